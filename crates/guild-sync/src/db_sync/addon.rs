//! db_sync, addon half: PATTSync export records → notes, class, rank and level on
//! `wow_characters`, matched on name and realm. (Issue 8 builds this.)
