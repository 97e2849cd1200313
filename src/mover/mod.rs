//! Data movement next to the data: the job a mover pod runs ([`job`]), the pod and clone
//! objects that carry it ([`pod`]), and the in-pod subcommand that runs the engine ([`run`]).

pub mod job;
pub mod pod;
pub mod run;
