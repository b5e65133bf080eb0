//! placeholder: the live broker
