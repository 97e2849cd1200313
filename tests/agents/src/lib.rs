//! Node agents of kentledge's local test cluster (under construction).
