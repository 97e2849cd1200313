//! A local Kubernetes test cluster for kentledge's end-to-end tests (under construction).
