// Reference sample for the cyclomatic complexity tests (see lizard-expected.txt).

fn straight(a: i32, b: i32) -> i32 {
    a + b
}

fn grade(score: u32) -> &'static str {
    if score >= 90 {
        "A"
    } else if score >= 80 {
        "B"
    } else {
        "F"
    }
}

fn count_valid(items: &[i32], low: i32, high: i32) -> usize {
    let mut total = 0;
    for item in items {
        if *item > low && *item < high || *item == 0 {
            total += 1;
        }
    }
    while total > 100 {
        total -= 1;
    }
    total
}

fn pick(kind: &str) -> u32 {
    match kind {
        "a" => 1,
        "b" => 2,
        _ => 0,
    }
}

fn first_even(values: &[i32]) -> Option<i32> {
    for v in values {
        if v % 2 == 0 {
            return Some(*v);
        }
    }
    None
}

fn weekday(n: u8) -> &'static str {
    match n {
        1 => "mon",
        2 => "tue",
        3 => "wed",
        4 => "thu",
        _ => "other",
    }
}

fn parse_sum(a: &str, b: &str) -> Result<i32, std::num::ParseIntError> {
    let x = a.parse::<i32>()?;
    let y = b.parse::<i32>()?;
    Ok(x + y)
}
