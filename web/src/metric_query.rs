//! Flink's metric queries (`.../metrics?get=a,b&agg=min,max`): without `get` the list of
//! metric ids, with it their values as strings; the aggregated form (`subtasks/metrics`)
//! answers `min`, `max`, `avg` and `sum` over the components.

use serde_json::{json, Map, Value};

/// A metric's current value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricValue {
    /// A count or a gauge of whole units.
    Int(i64),
    /// A ratio or a rate.
    Float(f64),
}

impl MetricValue {
    fn as_f64(self) -> f64 {
        match self {
            MetricValue::Int(i) => i as f64,
            MetricValue::Float(f) => f,
        }
    }

    /// Flink sends every value as a string.
    fn text(self) -> String {
        match self {
            MetricValue::Int(i) => i.to_string(),
            MetricValue::Float(f) => f.to_string(),
        }
    }
}

/// The names a `get` parameter asks for (comma-separated; blanks dropped).
pub fn requested(get: Option<&str>) -> Option<Vec<String>> {
    get.map(|g| g.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
}

/// `[{"id"}]` without `get`, `[{"id", "value"}]` for the requested ids that exist (Flink
/// leaves unknown ids out).
pub fn answer(metrics: &[(String, MetricValue)], get: Option<&str>) -> Value {
    match requested(get) {
        None => Value::Array(metrics.iter().map(|(id, _)| json!({ "id": id })).collect()),
        Some(want) => Value::Array(
            want.iter()
                .filter_map(|w| metrics.iter().find(|(id, _)| id == w))
                .map(|(id, v)| json!({"id": id, "value": v.text()}))
                .collect(),
        ),
    }
}

/// The aggregations asked for by `agg` (Flink's default: all four); an unknown one is an error.
pub fn aggregations(agg: Option<&str>) -> Result<Vec<&'static str>, String> {
    const ALL: [&str; 4] = ["min", "max", "avg", "sum"];
    let Some(agg) = agg else { return Ok(ALL.to_vec()) };
    agg.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|a| ALL.iter().copied().find(|x| x.eq_ignore_ascii_case(a)).ok_or_else(|| a.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|bad| format!("unknown aggregation '{bad}': use min, max, avg or sum"))
}

/// Flink's aggregated answer over components (subtasks, TaskManagers): `[{"id"}]` without
/// `get`; with it `[{"id", "min", "max", "avg", "sum"}]` (the `aggs` asked for), for every
/// requested id that at least one component has.
pub fn aggregate(components: &[Vec<(String, MetricValue)>], get: Option<&str>, aggs: &[&str]) -> Value {
    let mut ids: Vec<&String> = Vec::new();
    for c in components {
        for (id, _) in c {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let Some(want) = requested(get) else {
        return Value::Array(ids.into_iter().map(|id| json!({ "id": id })).collect());
    };
    let mut out = Vec::new();
    for w in &want {
        let values: Vec<f64> =
            components.iter().filter_map(|c| c.iter().find(|(id, _)| id == w)).map(|(_, v)| v.as_f64()).collect();
        if values.is_empty() {
            continue;
        }
        let sum: f64 = values.iter().sum();
        let mut m = Map::new();
        m.insert("id".into(), json!(w));
        for a in aggs {
            let v = match *a {
                "min" => values.iter().copied().fold(f64::INFINITY, f64::min),
                "max" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                "avg" => sum / values.len() as f64,
                _ => sum,
            };
            m.insert((*a).into(), json!(v));
        }
        out.push(Value::Object(m));
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, MetricValue)]) -> Vec<(String, MetricValue)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn a_query_lists_ids_or_answers_values_as_strings() {
        let metrics = m(&[("numRecordsIn", MetricValue::Int(7)), ("ratio", MetricValue::Float(0.25))]);
        assert_eq!(answer(&metrics, None), json!([{"id": "numRecordsIn"}, {"id": "ratio"}]));
        assert_eq!(
            answer(&metrics, Some("ratio, nope,numRecordsIn")),
            json!([{"id": "ratio", "value": "0.25"}, {"id": "numRecordsIn", "value": "7"}])
        );
        assert_eq!(answer(&metrics, Some("")), json!([]));
    }

    #[test]
    fn aggregates_cover_the_components_that_have_the_metric() {
        let a = m(&[("n", MetricValue::Int(1)), ("only", MetricValue::Int(5))]);
        let b = m(&[("n", MetricValue::Int(3))]);
        let all = aggregations(None).unwrap();
        assert_eq!(
            aggregate(&[a.clone(), b.clone()], Some("n,only,missing"), &all),
            json!([{"id": "n", "min": 1.0, "max": 3.0, "avg": 2.0, "sum": 4.0},
                   {"id": "only", "min": 5.0, "max": 5.0, "avg": 5.0, "sum": 5.0}])
        );
        assert_eq!(aggregate(&[a, b], None, &all), json!([{"id": "n"}, {"id": "only"}]));
        assert_eq!(aggregations(Some("MAX,sum")).unwrap(), vec!["max", "sum"]);
        assert_eq!(aggregations(Some("median")).unwrap_err(), "unknown aggregation 'median': use min, max, avg or sum");
    }
}
