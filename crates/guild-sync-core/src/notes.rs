//! Note parsing: Discord hints and alt hints in guild and officer notes. (Issue 5 builds this.)
