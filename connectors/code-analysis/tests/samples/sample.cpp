// Reference sample for the cyclomatic complexity tests (see lizard-expected.txt).
#include <string>
#include <vector>

int straight(int a, int b) {
    return a + b;
}

std::string grade(int score) {
    if (score >= 90) {
        return "A";
    } else if (score >= 80) {
        return "B";
    } else {
        return "F";
    }
}

int countValid(const std::vector<int> &items, int low, int high) {
    int total = 0;
    for (int item : items) {
        if ((item > low && item < high) || item == 0) {
            total += 1;
        }
    }
    return total;
}

int pick(int kind) {
    switch (kind) {
    case 1:
        return 10;
    case 2:
        return 20;
    default:
        return 0;
    }
}

int parse(const std::string &text) {
    try {
        return std::stoi(text);
    } catch (const std::invalid_argument &e) {
        return 0;
    }
}
