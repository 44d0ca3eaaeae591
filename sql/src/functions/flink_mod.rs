//! Flink's `MOD(a, b)` (and `a % b`, which Flink reads as `MOD`): the remainder with the sign
//! of `a`, typed as **`b`'s type** (`MOD(BIGINT, INT)` is `INT`, which is why the bench's
//! computed columns cast back to `BIGINT`). DataFusion's `%` types the result as the common
//! type of both sides, so Flink's typing is this function and `%` is rewritten to it.

use arrow::array::{Array, ArrayRef, Datum, Scalar};
use arrow::compute::kernels::numeric::rem;
use arrow::datatypes::DataType;
use datafusion_common::{exec_err, plan_err, Result, ScalarValue};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// `MOD(integer, integer)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkMod {
    signature: Signature,
}

impl Default for FlinkMod {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer() || t.is_null()
}

/// An argument as something arrow's kernels take: a column, or one value for all rows.
fn as_int64(v: &ColumnarValue) -> Result<Either> {
    Ok(match v.cast_to(&DataType::Int64, None)? {
        ColumnarValue::Array(a) => Either::Array(a),
        ColumnarValue::Scalar(s) => Either::Scalar(s.to_scalar()?),
    })
}

enum Either {
    Array(ArrayRef),
    Scalar(Scalar<ArrayRef>),
}

impl Either {
    fn datum(&self) -> &dyn Datum {
        match self {
            Either::Array(a) => a,
            Either::Scalar(s) => s,
        }
    }
}

impl ScalarUDFImpl for FlinkMod {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [a, b] if is_integer(a) && is_integer(b) => Ok(arg_types.to_vec()),
            [a, b] => plan_err!("MOD takes two integers, not {a} and {b}"),
            _ => plan_err!("MOD takes two arguments, not {}", arg_types.len()),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [_, DataType::Null] => Ok(DataType::Int32),
            [_, b] => Ok(b.clone()),
            _ => plan_err!("MOD takes two arguments"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [a, b] = args.args.as_slice() else { return exec_err!("MOD takes two arguments") };
        let scalars = matches!((a, b), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let (a, b) = (as_int64(a)?, as_int64(b)?);
        let out = rem(a.datum(), b.datum())?;
        let out = arrow::compute::cast(&out, args.return_type())?;
        if scalars {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        debug_assert_eq!(out.len(), args.number_rows);
        Ok(ColumnarValue::Array(out))
    }
}
