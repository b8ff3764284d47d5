// Reference sample for the cyclomatic complexity tests (see lizard-expected.txt).
public class Sample {
    int straight(int a, int b) {
        return a + b;
    }

    String grade(int score) {
        if (score >= 90) {
            return "A";
        } else if (score >= 80) {
            return "B";
        } else {
            return "F";
        }
    }

    int countValid(int[] items, int low, int high) {
        int total = 0;
        for (int item : items) {
            if (item > low && item < high || item == 0) {
                total += 1;
            }
        }
        while (total > 100) {
            total -= 1;
        }
        return total;
    }

    int pick(String kind) {
        switch (kind) {
            case "a":
                return 1;
            case "b":
                return 2;
            default:
                return 0;
        }
    }

    Integer parse(String text) {
        try {
            return Integer.parseInt(text);
        } catch (NumberFormatException e) {
            return null;
        } catch (NullPointerException e) {
            return 0;
        }
    }
}
