//! Data channels of this process.

use std::sync::{Arc, RwLock};

use crate::exchange::LocalExchange;
use crate::peers::DataPlane;

/// In-process channels, and in a TaskManager process the network data plane to others.
#[derive(Default)]
pub struct DataServices {
    /// In-process data channels.
    pub exchange: LocalExchange,
    data_plane: RwLock<Option<Arc<dyn DataPlane>>>,
}

impl DataServices {
    /// The network data plane, in a TaskManager process.
    pub fn data_plane(&self) -> Option<Arc<dyn DataPlane>> {
        super::read(&self.data_plane)
    }

    /// Installs the network data plane (a TaskManager process does, at start).
    pub fn set_data_plane(&self, plane: Arc<dyn DataPlane>) {
        super::write(&self.data_plane, Some(plane));
    }
}
