//! Conformance tests of the test cluster's API server, organised by the bullets. Each asserts the
//! wire behaviour captured from a real kube-apiserver v1.32 (`shared/reference/apiserver-reference.md`).

mod support;

mod admission;
mod deletion;
mod discovery;
mod impersonation;
mod kubectl;
mod lists;
mod namespaces;
mod objects;
mod patching;
mod proxy;
mod rbac;
mod watching;
