#!/usr/bin/env bash
# Issue 19: what writing member events adds to each sync, measured back to back.
#
# Builds this checkout ("with events") and a copy of its HEAD with scripts/no-events.patch
# applied ("without": the same code with the event-writing CTEs taken out of the roster and
# Discord statements, db/characters.rs and db/discord_users.rs; nothing else differs), then
# alternates, ROUNDS times each, with the order swapped every round:
#   - `guild-sync bench`: whole syncs as the pipeline runs them; its third pass is the guild a
#     week later (rank changes, departures, renames, new nicknames: a week of changes in one
#     run) and its fourth six hours after that (the next run of the default schedule, a 28th
#     of those changes), the passes that write events;
#   - `cargo bench --bench member_events -- sync`: the roster and Discord database stages
#     alone, in bulk cases (every rank changed at once, 100 leave, 300 nick changes, ...).
# It prints each figure's median per variant and the difference.
#
# Usage: scripts/measure-event-cost.sh   (ROUNDS=4 by default; WORK=dir keeps the builds)
#   AGAINST=rev   compare with the commit `rev` as it is instead of with HEAD without events
#                 (both write events): a change to the event writes measured back to back
#                 against the previous version. The columns are then `rev` and HEAD.
#   DISCORD=3000  one Discord size only (`guild-sync bench --discord 3000`, about 2 s a run
#                 instead of 15), so many rounds fit: the week-later Discord sync moves by
#                 ±0.6 ms (interquartile) from run to run, so 6 rounds cannot tell 1 ms apart;
#                 40 rounds can.
#   STAGES=0      skip the database-stage bench (`member_events -- sync`).
# Run it on a committed checkout on a quiet machine: the copy is built from HEAD, and the
# host's speed moves with its load. The copy gets its own target directory (a full release
# build, several minutes, the first time).
set -euo pipefail

rounds=${ROUNDS:-4}
against=${AGAINST:-}
stages=${STAGES:-1}
sizes=()
if [ -n "${DISCORD:-}" ]; then sizes=(--discord "$DISCORD"); fi
root=$(git rev-parse --show-toplevel)
work=${WORK:-/tmp/guild-sync-event-cost}
copy="$work/no-events"
out="$work/out"
mkdir -p "$work" "$out"

# A copy kept from an earlier run (WORK=) is brought to the commit it measures first: built from
# another commit it would measure another version, and its migrations would not match its
# cluster.
head=$(git -C "$root" rev-parse "${against:-HEAD}")
# The copy is patched exactly when it measures "without events"; one left from the other mode
# is brought back too.
patched() { ! git -C "$copy" diff --quiet; }
if [ -d "$copy" ] && { [ "$(git -C "$copy" rev-parse HEAD)" != "$head" ] \
                       || { [ -n "$against" ] && patched; } \
                       || { [ -z "$against" ] && ! patched; }; }; then
    git -C "$copy" checkout --quiet -- .
    git -C "$copy" checkout --quiet --detach "$head"
    rm -rf "$work"/cluster*
    fresh=1
fi
if [ ! -d "$copy" ]; then
    git -C "$root" worktree add --detach "$copy" "$head"
    fresh=1
fi
if [ "${fresh:-0}" = 1 ] && [ -z "$against" ]; then
    if ! git -C "$copy" apply "$root/scripts/no-events.patch"; then
        echo "scripts/no-events.patch no longer applies to HEAD: update it to take the event" >&2
        echo "CTEs out of db/characters.rs and db/discord_users.rs again" >&2
        exit 1
    fi
fi

for tree in "$root" "$copy"; do
    (cd "$tree" && cargo build --release --locked -p guild-sync)
    if [ "$stages" != 0 ]; then
        (cd "$tree" && cargo bench --locked -p guild-sync --bench member_events --no-run)
    fi
done

bench_binary() {
    ls -t "$1"/target/release/deps/member_events-* | grep -v '\.d$' | head -1
}

rm -f "$out"/*.txt
for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) = 1 ]; then order="with without"; else order="without with"; fi
    for variant in $order; do
        if [ "$variant" = with ]; then tree=$root; else tree=$copy; fi
        load=$(cut -d' ' -f1 /proc/loadavg)
        if [ -n "$against" ]; then
            if [ "$variant" = with ]; then label=HEAD; else label=$against; fi
        else
            label="$variant events"
        fi
        echo "round $round, $label (load $load)"
        # A cluster per build: with AGAINST= their migrations differ.
        RUST_LOG=error GUILD_SYNC_DATA_DIR="$work/cluster-$variant" \
            "$tree/target/release/guild-sync" bench \
            "${sizes[@]}" > "$out/pipeline-$variant-$round.txt"
        if [ "$stages" != 0 ]; then
            (cd "$tree/crates/guild-sync" && RUST_LOG=error "$(bench_binary "$tree")" --bench sync) \
                > "$out/stages-$variant-$round.txt"
        fi
    done
done

if [ -n "$against" ]; then
    columns="$against HEAD"
else
    columns="without with"
fi
python3 - "$out" $columns <<'EOF'
import glob, re, statistics, sys

out, column_without, column_with = sys.argv[1:4]
figures = {}  # (figure, variant) -> [ms]

def add(name, variant, ms):
    figures.setdefault((name, variant), []).append(ms)

for path in glob.glob(f"{out}/pipeline-*.txt"):
    variant = path.split("-")[-2]
    text = open(path).read()
    for scenario in text.split("guild-sync bench: 1000 characters × ")[1:]:
        size = scenario.split(" ")[0]
        week, hours = scenario.split("a week later:")[1].split("six hours later:")
        for label, later in (("week later", week), ("6 h later", hours)):
            for line in later.splitlines():
                m = re.match(r"(sync \w+ \(\w+\)|stages total|pipeline wall)\s+([\d.]+) ms",
                             line)
                if m:
                    add(f"{label}, 1,000 x {size}: {m.group(1)}", variant, float(m.group(2)))
            m = re.search(r"events written: (\d+)", later)
            add(f"{label}, 1,000 x {size}: events written", variant, float(m.group(1)))

for path in glob.glob(f"{out}/stages-*.txt"):
    variant = path.split("-")[-2]
    part = None
    for line in open(path):
        if line.startswith("== "):
            part = "roster" if "Roster" in line else "Discord"
            continue
        m = re.match(r"(.+?)\s+([\d.]+) ms", line)
        if m and part:
            add(f"database stage, {part}: {m.group(1).strip()}", variant, float(m.group(2)))

def quartiles(values):
    """First quartile, median, third quartile (the median alone hides how wide runs are)."""
    if len(values) < 4:
        m = statistics.median(values)
        return m, m, m
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3

names = sorted({name for name, _ in figures},
               key=lambda n: (n.startswith("database"), not n.startswith("week"), n))
print(f"{'figure (median of rounds, ms; [first-third quartile])':<62} "
      f"{column_without:>21} {column_with:>21} {'added':>8}")
for name in names:
    w1, without, w3 = quartiles(figures.get((name, "without"), [0]))
    e1, with_, e3 = quartiles(figures.get((name, "with"), [0]))
    added = f"{100 * (with_ - without) / without:+.1f} %" if without and "events" not in name else ""
    print(f"{name:<62} {without:>7.1f} [{w1:5.1f}-{w3:5.1f}] {with_:>7.1f} [{e1:5.1f}-{e3:5.1f}] "
          f"{added:>8}")
EOF
