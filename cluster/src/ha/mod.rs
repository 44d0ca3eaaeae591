//! High availability with ZooKeeper: leader election, leader address, job graph and
//! checkpoint pointers, checkpoint id counter. (Being written: see ARCHITECTURE.md.)
