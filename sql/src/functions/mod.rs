//! The functions a statement can call: DataFusion's built-in scalar, aggregate and window
//! functions, with Flink's own where Flink means something else (`MOD`, `TO_TIMESTAMP_LTZ`).
//! Names are looked up lower-case (DataFusion lower-cases unquoted function names).

pub mod flink_mod;
pub mod to_timestamp_ltz;

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion_expr::planner::ExprPlanner;
use datafusion_expr::{AggregateUDF, ScalarUDF, WindowUDF};

/// Every function by name, and DataFusion's planners of function-like syntax (`SUBSTRING(s
/// FROM 2)`, `EXTRACT`, `POSITION`, `COUNT(*)`, struct and map literals).
#[derive(Debug, Clone)]
pub struct Functions {
    expr_planners: Vec<Arc<dyn ExprPlanner>>,
    scalar: BTreeMap<String, Arc<ScalarUDF>>,
    aggregate: BTreeMap<String, Arc<AggregateUDF>>,
    window: BTreeMap<String, Arc<WindowUDF>>,
}

impl Default for Functions {
    fn default() -> Self {
        let expr_planners: Vec<Arc<dyn ExprPlanner>> = vec![
            Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
            Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
            Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
            Arc::new(datafusion_functions_window::planner::WindowFunctionPlanner),
        ];
        let mut f =
            Functions { expr_planners, scalar: BTreeMap::new(), aggregate: BTreeMap::new(), window: BTreeMap::new() };
        for udf in datafusion_functions::all_default_functions() {
            f.add_scalar(udf);
        }
        // Flink's, registered last: they replace DataFusion's functions of the same name.
        f.add_scalar(Arc::new(ScalarUDF::new_from_impl(flink_mod::FlinkMod::default())));
        f.add_scalar(Arc::new(ScalarUDF::new_from_impl(to_timestamp_ltz::ToTimestampLtz::default())));
        for udaf in datafusion_functions_aggregate::all_default_aggregate_functions() {
            for name in std::iter::once(udaf.name().to_string()).chain(udaf.aliases().iter().cloned()) {
                f.aggregate.insert(name.to_lowercase(), udaf.clone());
            }
        }
        for udwf in datafusion_functions_window::all_default_window_functions() {
            for name in std::iter::once(udwf.name().to_string()).chain(udwf.aliases().iter().cloned()) {
                f.window.insert(name.to_lowercase(), udwf.clone());
            }
        }
        f
    }
}

impl Functions {
    /// Adds (or replaces) a scalar function under its name and aliases.
    pub fn add_scalar(&mut self, udf: Arc<ScalarUDF>) {
        for name in std::iter::once(udf.name().to_string()).chain(udf.aliases().iter().cloned()) {
            self.scalar.insert(name.to_lowercase(), udf.clone());
        }
    }

    /// DataFusion's planners of function-like syntax.
    pub fn expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.expr_planners
    }

    /// The scalar function `name`.
    pub fn scalar(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.scalar.get(&name.to_lowercase()).cloned()
    }

    /// The aggregate function `name`.
    pub fn aggregate(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregate.get(&name.to_lowercase()).cloned()
    }

    /// The window function `name`.
    pub fn window(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.window.get(&name.to_lowercase()).cloned()
    }

    /// Names of scalar functions.
    pub fn scalar_names(&self) -> Vec<String> {
        self.scalar.keys().cloned().collect()
    }

    /// Names of aggregate functions.
    pub fn aggregate_names(&self) -> Vec<String> {
        self.aggregate.keys().cloned().collect()
    }

    /// Names of window functions.
    pub fn window_names(&self) -> Vec<String> {
        self.window.keys().cloned().collect()
    }

    /// Every function name, sorted (SHOW FUNCTIONS).
    pub fn all_names(&self) -> Vec<String> {
        let mut all: Vec<String> =
            self.scalar.keys().chain(self.aggregate.keys()).chain(self.window.keys()).cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}
