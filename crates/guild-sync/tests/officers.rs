//! Who counts as an officer (`db::officers`), on a real PostgreSQL: by the player's in-game
//! rank, by the Discord rank role, neither, after leaving the server, and a misconfigured
//! `GUILD_SYNC_OFFICER_RANK`.

mod common;

use guild_sync::db::officers::officer_standing;
use sqlx::PgPool;

use common::on_a_fresh_db;

/// A present Discord member with `roles`; returns its row id.
async fn member(pool: &PgPool, discord_id: &str, roles: &[&str]) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.discord_users (discord_id, username, all_guild_roles)
         VALUES ($1, 'user' || $1, $2) RETURNING id",
    )
    .bind(discord_id)
    .bind(roles)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A player owned by Discord row `discord_user`, with one character per `(rank name, in the
/// guild)`.
async fn player_with(pool: &PgPool, discord_user: i32, characters: &[(&str, bool)]) {
    let player: i32 = sqlx::query_scalar(
        "INSERT INTO guild_identity.players (display_name, discord_user_id)
         VALUES ('p', $1) RETURNING id",
    )
    .bind(discord_user)
    .fetch_one(pool)
    .await
    .unwrap();
    for (index, (rank, in_guild)) in characters.iter().enumerate() {
        let character: i32 = sqlx::query_scalar(
            "INSERT INTO guild_identity.wow_characters
                 (character_name, realm_slug, guild_rank_id, removed_at)
             VALUES ($1, 'argent-dawn', (SELECT id FROM common.guild_ranks WHERE name = $2),
                     CASE WHEN $3 THEN NULL ELSE now() END)
             RETURNING id",
        )
        .bind(format!("Char{discord_user}x{index}"))
        .bind(rank)
        .bind(in_guild)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO guild_identity.player_characters (player_id, character_id)
             VALUES ($1, $2)",
        )
        .bind(player)
        .bind(character)
        .execute(pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn officer_by_rank_or_role_and_nobody_else() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        // Officer in game (an Initiate alt does not pull the player down), no Discord role.
        let by_rank = member(pool, "101", &[]).await;
        player_with(pool, by_rank, &[("Initiate", true), ("Officer", true)]).await;
        // Holds the GM Discord role (case differs), no player.
        member(pool, "102", &["gm"]).await;
        // A Member whose Officer character left the guild.
        let former = member(pool, "103", &["Member"]).await;
        player_with(pool, former, &[("Member", true), ("Officer", false)]).await;
        // An officer who left the Discord server.
        let gone = member(pool, "104", &["Officer"]).await;
        player_with(pool, gone, &[("Officer", true)]).await;
        sqlx::query("UPDATE guild_identity.discord_users SET is_present = false WHERE id = $1")
            .bind(gone)
            .execute(pool)
            .await
            .unwrap();

        let standing = |id: &'static str| officer_standing(pool, id, "Officer");
        let rank = standing("101").await.unwrap();
        assert_eq!(
            (rank.player_rank_level, rank.role_rank_level),
            (Some(4), None)
        );
        assert!(rank.is_officer());
        let role = standing("102").await.unwrap();
        assert_eq!(
            (role.player_rank_level, role.role_rank_level),
            (None, Some(5))
        );
        assert!(role.is_officer());
        let former = standing("103").await.unwrap();
        assert_eq!(former.player_rank_level, Some(2));
        assert!(!former.is_officer());
        assert!(!standing("104").await.unwrap().is_officer());
        assert!(!standing("999").await.unwrap().is_officer());

        // A lower threshold lets the Member in; an unknown rank name is an error, not a guess.
        assert!(
            officer_standing(pool, "103", "member")
                .await
                .unwrap()
                .is_officer()
        );
        let err = officer_standing(pool, "101", "Raid Leader")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("GUILD_SYNC_OFFICER_RANK=\"Raid Leader\""),
            "{err:#}"
        );
    })
    .await;
}
