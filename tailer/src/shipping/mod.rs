//! The shipping side: connections to bucks, live packets, the repair path, spool pruning.
