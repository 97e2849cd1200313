//! The controller↔mover-pod contract: the job a mover pod runs and the events it prints
//! ([`job`]), and the pod and clone objects that carry it ([`pod`]). The in-pod side that runs
//! the engine is [`crate::inpod`]; running a pod from the controller is [`crate::flows::movers`].

pub mod job;
pub mod pod;
