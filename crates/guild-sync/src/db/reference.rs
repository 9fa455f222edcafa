//! Reference data: roles, classes, specializations and guild ranks (seeded by migrations,
//! editable by officers). Loaded once per run into caches by the pipelines.

use anyhow::Result;
use sqlx::PgExecutor;

/// A `common.guild_ranks` row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GuildRankRow {
    pub id: i32,
    pub name: String,
    pub level: i32,
    pub scheduling_weight: i32,
    pub description: Option<String>,
    pub ingame_rank_index: Option<i32>,
    pub discord_role_name: Option<String>,
}

/// A `guild_identity.classes` row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClassRow {
    pub id: i32,
    pub name: String,
    pub color_hex: String,
    pub blizzard_class_id: i32,
}

/// A `guild_identity.specializations` row with its role's name.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SpecRow {
    pub id: i32,
    pub class_id: i32,
    pub name: String,
    pub default_role_id: i32,
    pub role_name: String,
    pub wowhead_slug: String,
    pub blizzard_spec_id: Option<i32>,
}

/// Every guild rank, most senior first.
pub async fn guild_ranks(db: impl PgExecutor<'_>) -> Result<Vec<GuildRankRow>> {
    Ok(sqlx::query_as(
        "SELECT id, name, level, scheduling_weight, description, ingame_rank_index, discord_role_name
         FROM common.guild_ranks ORDER BY level DESC",
    )
    .fetch_all(db)
    .await?)
}

/// Every class.
pub async fn classes(db: impl PgExecutor<'_>) -> Result<Vec<ClassRow>> {
    Ok(sqlx::query_as(
        "SELECT id, name, color_hex, blizzard_class_id FROM guild_identity.classes ORDER BY id",
    )
    .fetch_all(db)
    .await?)
}

/// Every specialization.
pub async fn specializations(db: impl PgExecutor<'_>) -> Result<Vec<SpecRow>> {
    Ok(sqlx::query_as(
        "SELECT s.id, s.class_id, s.name, s.default_role_id, r.name AS role_name, s.wowhead_slug,
                s.blizzard_spec_id
         FROM guild_identity.specializations s
         JOIN guild_identity.roles r ON r.id = s.default_role_id
         ORDER BY s.id",
    )
    .fetch_all(db)
    .await?)
}
