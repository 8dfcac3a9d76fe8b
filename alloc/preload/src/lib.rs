//! libhakmem.so (in progress).
