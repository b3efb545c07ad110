//! Realistic sample billing records, for the demo, the benchmarks and the tests.
//!
//! Shaped like Azure usage-detail invoices: a header, totals and line items with
//! meter, resource and tag data. Size is set by the number of line items; the
//! output is deterministic for a given seed so runs are comparable.

use std::fmt::Write;

use chrono::NaiveDate;

const CATEGORIES: [(&str, &str); 6] = [
    ("Virtual Machines", "D4s v5"),
    ("Storage", "Hot LRS Data Stored"),
    ("Bandwidth", "Standard Data Transfer Out"),
    ("Azure Cosmos DB", "100 RU/s"),
    ("Azure App Service", "P1 v3 App"),
    ("Azure Monitor", "Analytics Logs Data Ingestion"),
];
const REGIONS: [&str; 4] = ["westeurope", "northeurope", "eastus2", "swedencentral"];

/// One billing record as JSON text.
#[derive(Debug, Clone)]
pub struct SampleRecord {
    pub customer_id: String,
    pub id: String,
    pub invoice_date: NaiveDate,
    pub json: String,
}

/// Builds an invoice of roughly `approx_bytes` (at least one line item).
pub fn invoice(customer_id: &str, id: &str, invoice_date: NaiveDate, approx_bytes: usize, seed: u64) -> SampleRecord {
    let mut rng = fastrand::Rng::with_seed(seed);
    let sub = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        rng.u32(..),
        rng.u16(..),
        rng.u16(..),
        rng.u16(..),
        rng.u64(..1 << 48)
    );
    let mut lines = String::new();
    let mut total_cents: u64 = 0;
    let mut n = 0;
    while n == 0 || lines.len() + 700 < approx_bytes {
        let (category, meter) = CATEGORIES[rng.usize(..CATEGORIES.len())];
        let region = REGIONS[rng.usize(..REGIONS.len())];
        let quantity = rng.u32(1..100_000) as f64 / 100.0;
        let unit_price = rng.u32(1..50_000) as f64 / 10_000.0;
        let cents = (quantity * unit_price * 100.0).round() as u64;
        total_cents += cents;
        if n > 0 {
            lines.push(',');
        }
        let _ = write!(
            lines,
            r#"{{"lineNumber":{n},"date":"{invoice_date}","meterId":"{:08x}-{:04x}","meterCategory":"{category}","meterName":"{meter}","region":"{region}","resourceId":"/subscriptions/{sub}/resourceGroups/rg-{customer}-{}/providers/Microsoft.Compute/virtualMachines/vm-{:05}","quantity":{quantity},"unitPrice":{unit_price},"unitOfMeasure":"1 Hour","cost":{}.{:02},"currency":"EUR","tags":{{"env":"{}","costCenter":"CC-{:04}","owner":"team-{}"}},"chargeType":"Usage","pricingModel":"OnDemand"}}"#,
            rng.u32(..),
            rng.u16(..),
            rng.u8(..20),
            rng.u32(..100_000),
            cents / 100,
            cents % 100,
            ["prod", "test", "dev"][rng.usize(..3)],
            rng.u16(..10_000),
            rng.u8(..50),
            customer = customer_id.chars().filter(char::is_ascii_alphanumeric).take(16).collect::<String>(),
        );
        n += 1;
    }
    let tax_cents = total_cents * 19 / 100;
    let json = format!(
        r#"{{"id":{},"customerId":{},"invoiceDate":"{invoice_date}","billingPeriod":{{"start":"{}","end":"{invoice_date}"}},"subscriptionId":"{sub}","currency":"EUR","status":"issued","totals":{{"preTax":{}.{:02},"tax":{}.{:02},"total":{}.{:02},"lineCount":{n}}},"lineItems":[{lines}]}}"#,
        serde_json::Value::from(id),
        serde_json::Value::from(customer_id),
        invoice_date - chrono::Duration::days(30),
        total_cents / 100,
        total_cents % 100,
        tax_cents / 100,
        tax_cents % 100,
        (total_cents + tax_cents) / 100,
        (total_cents + tax_cents) % 100,
    );
    SampleRecord { customer_id: customer_id.to_owned(), id: id.to_owned(), invoice_date, json }
}

impl SampleRecord {
    /// The same invoice in a container partitioned by another property: its
    /// `customerId` renamed to `property` (`tenantId`); `id` leaves it as it is.
    pub fn partitioned_by(mut self, property: &str) -> Self {
        if property != "customerId" && property != "id" {
            self.json = self.json.replacen("\"customerId\":", &format!("\"{property}\":"), 1);
        }
        self
    }

    /// The record's partition-key value in a container partitioned by `property`.
    pub fn partition_key(&self, property: &str) -> &str {
        if property == "id" { &self.id } else { &self.customer_id }
    }
}

/// True when two JSON texts hold the same data, numbers compared by value: the
/// emulator re-prints numbers the way JavaScript does (`100.00` comes back `100`),
/// so checking a record against what was seeded must not compare number text.
pub fn same_data(a: &[u8], b: &[u8]) -> bool {
    fn eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value::*;
        match (a, b) {
            (Number(x), Number(y)) => x.as_f64() == y.as_f64(),
            (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| eq(x, y)),
            (Object(x), Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| eq(v, w))),
            _ => a == b,
        }
    }
    match (serde_json::from_slice(a), serde_json::from_slice(b)) {
        (Ok(x), Ok(y)) => eq(&x, &y),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoices_are_valid_json_of_about_the_asked_size() {
        let date = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
        for size in [1_000, 20_000, 300_000] {
            let r = invoice("cust-1", "inv \"1\"", date, size, 7);
            let v: serde_json::Value = serde_json::from_str(&r.json).unwrap();
            assert_eq!(v["id"], "inv \"1\"");
            assert_eq!(v["customerId"], "cust-1");
            assert!(r.json.len() <= size.max(1_500) && r.json.len() > size * 7 / 10, "{size} -> {}", r.json.len());
        }
        assert_eq!(invoice("c", "i", date, 5_000, 1).json, invoice("c", "i", date, 5_000, 1).json);
        assert!(same_data(br#"{"a":100.00,"b":[1]}"#, br#"{"b":[1.0],"a":100}"#));
        assert!(!same_data(br#"{"a":1}"#, br#"{"a":2}"#) && !same_data(br#"{"a":1}"#, br#"{"a":1,"b":1}"#));
    }
}
