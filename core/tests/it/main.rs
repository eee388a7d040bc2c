//! hookwire-core's property tests, in one binary: the verification schemes (`properties`) and
//! rendering every template over mutated payloads (`render_properties` for the channel rules,
//! `fence_properties` for payload text kept inside its fences; both over the fixtures of
//! `render_world` and the oracle of `channel_rules`, which the fuzz targets share).

mod channel_rules;
mod fence_properties;
mod layers;
mod properties;
mod render_properties;
mod render_world;
