/* Reference sample for the cyclomatic complexity tests (see lizard-expected.txt). */

int straight(int a, int b) {
    return a + b;
}

const char *grade(int score) {
    if (score >= 90) {
        return "A";
    } else if (score >= 80) {
        return "B";
    } else {
        return "F";
    }
}

int count_valid(const int *items, int n, int low, int high) {
    int total = 0;
    for (int i = 0; i < n; i++) {
        if ((items[i] > low && items[i] < high) || items[i] == 0) {
            total += 1;
        }
    }
    while (total > 100) {
        total -= 1;
    }
    return total;
}

int pick(int kind) {
    switch (kind) {
    case 1:
        return 10;
    case 2:
        return 20;
    case 3:
        return 30;
    default:
        return 0;
    }
}

int sign(int x) {
    return x > 0 ? 1 : x < 0 ? -1 : 0;
}
