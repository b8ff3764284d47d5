// Reference sample for the cyclomatic complexity tests (see lizard-expected.txt).

function straight(a: number, b: number): number {
  return a + b;
}

function grade(score: number): string {
  if (score >= 90) {
    return "A";
  } else if (score >= 80) {
    return "B";
  } else {
    return "F";
  }
}

function countValid(items: number[], low: number, high: number): number {
  let total = 0;
  for (const item of items) {
    if ((item > low && item < high) || item === 0) {
      total += 1;
    }
  }
  do {
    total -= 1;
  } while (total > 100);
  return total;
}

function pick(kind: string): number {
  switch (kind) {
    case "a":
      return 1;
    case "b":
      return 2;
    default:
      return 0;
  }
}
