//! hookwire-core's property tests, in one binary: the verification schemes (`properties`) and
//! rendering every template over mutated payloads (`render_properties`).

mod properties;
mod render_properties;
