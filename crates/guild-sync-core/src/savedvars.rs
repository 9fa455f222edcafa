//! The SavedVariables parser: Lua table constructors read as data, never executed, and the PATTSync export model. (Issue 8 builds this.)
