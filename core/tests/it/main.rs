//! hookwire-core's property tests, in one binary: the verification schemes (`properties`) and
//! rendering every template over mutated payloads (`render_properties`, over the fixtures of
//! `render_world` and the oracle of `channel_rules`, both shared with the fuzz targets).

mod channel_rules;
mod properties;
mod render_properties;
mod render_world;
