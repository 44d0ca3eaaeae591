//! Flink's `TO_TIMESTAMP_LTZ(numeric, precision)`: epoch seconds (precision 0) or
//! milliseconds (precision 3) as a `TIMESTAMP_LTZ(3)`, i.e. Arrow's
//! `Timestamp(Millisecond, "UTC")` (see `types.rs`). The integer is the instant itself, so
//! milliseconds are a reinterpretation of the column, not a computation.

use arrow::datatypes::DataType;
use datafusion_common::{exec_err, plan_err, Result, ScalarValue};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use crate::types::timestamp_ltz_ms;

/// `TO_TIMESTAMP_LTZ(epoch, 0 | 3)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToTimestampLtz {
    signature: Signature,
}

impl Default for ToTimestampLtz {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ToTimestampLtz {
    fn name(&self) -> &str {
        "to_timestamp_ltz"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [a] | [a, _] if !(a.is_integer() || a.is_null()) => {
                plan_err!("TO_TIMESTAMP_LTZ takes an integer epoch (seconds or milliseconds), not {a}")
            }
            [_] => Ok(vec![DataType::Int64]),
            [_, p] if p.is_integer() => Ok(vec![DataType::Int64, DataType::Int32]),
            [_, p] => plan_err!("TO_TIMESTAMP_LTZ's precision is an integer (0 or 3), not {p}"),
            _ => plan_err!("TO_TIMESTAMP_LTZ takes one or two arguments"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(timestamp_ltz_ms())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let precision = match args.args.get(1) {
            None => 3,
            Some(ColumnarValue::Scalar(ScalarValue::Int32(Some(p)))) => *p,
            Some(_) => return exec_err!("TO_TIMESTAMP_LTZ's precision must be a literal 0 or 3"),
        };
        let Some(epoch) = args.args.first() else { return exec_err!("TO_TIMESTAMP_LTZ takes an epoch") };
        let millis = match precision {
            3 => epoch.clone(),
            0 => match epoch {
                ColumnarValue::Array(a) => {
                    let thousand = arrow::array::Int64Array::new_scalar(1000);
                    ColumnarValue::Array(arrow::compute::kernels::numeric::mul(a, &thousand)?)
                }
                ColumnarValue::Scalar(ScalarValue::Int64(v)) => {
                    let ms = v.map(|s| s.checked_mul(1000)).map(|m| m.ok_or("overflow"));
                    match ms.transpose() {
                        Ok(m) => ColumnarValue::Scalar(ScalarValue::Int64(m)),
                        Err(_) => return exec_err!("TO_TIMESTAMP_LTZ: {v:?} seconds overflow"),
                    }
                }
                other => return exec_err!("TO_TIMESTAMP_LTZ: unexpected epoch {other:?}"),
            },
            p => return exec_err!("TO_TIMESTAMP_LTZ's precision must be 0 or 3, not {p}"),
        };
        millis.cast_to(&timestamp_ltz_ms(), None)
    }
}
