//! The timer's schedule as the Functions host reads it: six-field NCRONTAB. Pure.

/// Checks a six-field NCRONTAB expression (`sec min hour day month weekday`), as
/// the Functions host reads a timer's schedule. NCRONTAB numbers weekdays 0-6 from
/// Sunday, the `cron` crate 1-7 from Sunday: numbers in the weekday field are
/// shifted (step values after `/` are not), names are kept.
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!("`{text}` must have six fields: second minute hour day month weekday"));
    }
    if fields[3..].iter().any(|f| f.contains('?')) {
        return Err(format!("`{text}`: `?` is not NCRONTAB; use `*`"));
    }
    let mut weekday = String::new();
    let mut number = String::new();
    let mut after_slash = false;
    for c in fields[5].chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        if !number.is_empty() {
            match number.parse::<u8>() {
                Ok(n @ 0..=6) if !after_slash => weekday.push_str(&(n + 1).to_string()),
                Ok(_) if after_slash => weekday.push_str(&number),
                _ => return Err(format!("`{text}`: weekdays are 0 (Sunday) to 6")),
            }
            number.clear();
        }
        after_slash = c == '/';
        if c != ' ' {
            weekday.push(c);
        }
    }
    let translated = [&fields[..5].join(" "), weekday.as_str()].join(" ");
    translated.parse::<cron::Schedule>().map_err(|e| format!("`{text}` is not a schedule: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_number_weekdays_from_sunday_0_as_the_host_does() {
        use chrono::{Datelike, Weekday};
        let days = |text: &str| -> Vec<Weekday> {
            let mut days: Vec<Weekday> =
                parse_schedule(text).unwrap().upcoming(chrono::Utc).take(14).map(|t| t.weekday()).collect();
            days.sort_by_key(|d| d.num_days_from_sunday());
            days.dedup();
            days
        };
        assert_eq!(days("0 0 2 * * 0"), [Weekday::Sun]);
        assert_eq!(days("0 0 2 * * 1-5"), [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]);
        assert_eq!(days("0 0 2 * * 6,0"), [Weekday::Sun, Weekday::Sat]);
        assert_eq!(days("0 0 2 * * */2"), [Weekday::Sun, Weekday::Tue, Weekday::Thu, Weekday::Sat]);
        assert_eq!(days("0 0 2 * * Mon"), [Weekday::Mon]);
        assert_eq!(days("0 0 2 * * *").len(), 7);
        assert!(parse_schedule("0 0 2 * * 7").is_err());
        assert!(parse_schedule("0 0 2 ? * 1").is_err());
        assert!(parse_schedule("0 2 * * *").is_err());
    }
}
