// Reference sample for the cyclomatic complexity tests (see lizard-expected.txt).

function straight(a, b) {
  return a + b;
}

function grade(score) {
  if (score >= 90) {
    return "A";
  } else if (score >= 80) {
    return "B";
  } else {
    return "F";
  }
}

function countValid(items, low, high) {
  let total = 0;
  for (const item of items) {
    if ((item > low && item < high) || item === 0) {
      total += 1;
    }
  }
  while (total > 100) {
    total -= 1;
  }
  return total;
}

function pick(kind) {
  switch (kind) {
    case "a":
      return 1;
    case "b":
      return 2;
    default:
      return 0;
  }
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return null;
  }
}

function ternary(x) {
  return x > 0 ? "positive" : "other";
}
