// Reference sample for the cyclomatic complexity tests (see lizard-expected.txt).
package sample

func straight(a int, b int) int {
	return a + b
}

func grade(score int) string {
	if score >= 90 {
		return "A"
	} else if score >= 80 {
		return "B"
	} else {
		return "F"
	}
}

func countValid(items []int, low int, high int) int {
	total := 0
	for _, item := range items {
		if item > low && item < high || item == 0 {
			total++
		}
	}
	return total
}

func pick(kind string) int {
	switch kind {
	case "a":
		return 1
	case "b", "c":
		return 2
	default:
		return 0
	}
}
