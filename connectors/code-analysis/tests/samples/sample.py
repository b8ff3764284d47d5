"""Reference sample for the cyclomatic complexity tests (see lizard-expected.txt)."""


def straight(a, b):
    return a + b


def grade(score):
    if score >= 90:
        return "A"
    elif score >= 80:
        return "B"
    elif score >= 70:
        return "C"
    else:
        return "F"


def count_valid(items, low, high):
    total = 0
    for item in items:
        if item > low and item < high or item == 0:
            total += 1
    while total > 100:
        total -= 1
    return total


def read_config(path):
    try:
        with open(path) as handle:
            data = handle.read()
    except OSError:
        return None
    finally:
        print("done")
    assert data
    return data


def classify(command):
    match command:
        case "start":
            return 1
        case "stop":
            return 2
        case _:
            return 0


def comprehension(values):
    return [v for v in values if v > 0]


def cleanup(path):
    try:
        return open(path).read()
    finally:
        print("closed")


def checked(value):
    assert value > 0
    with open(value) as handle:
        return handle.read()
