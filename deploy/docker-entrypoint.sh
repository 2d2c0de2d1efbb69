#!/bin/sh
# Entrypoint of the Nexus image. Runs from the application directory (WORKDIR /app).
#
#   (no arguments)            start-up checks (`nexus_check --deploy`, or `--startup` when
#                             DEBUG is on), then `python manage.py nexus_serve`
#   serve [ARGS]              same, passing ARGS to nexus_serve
#   migrate [ARGS]            `manage.py migrate --noinput`; run once per release (Job, compose
#                             one-shot), never from every replica
#   wait-for-migrations       return once the schema is current, logging the unapplied
#                             migrations while it waits; gives up after
#                             NEXUS_MIGRATION_WAIT_SECONDS (default 300) naming them
#   check                     the start-up checks alone
#   anything else             executed as given; a command line that runs nexus_serve gets
#                             the start-up checks first
#
# NEXUS_SKIP_CHECKS=1 skips the start-up checks, NEXUS_WARMUP=1 fills the module cache
# (nexus_warmup) before the server starts.
set -eu

log() {
    printf 'entrypoint: %s\n' "$*" >&2
}

# Production checks (`--deploy`: DEBUG off, no placeholder secrets) unless the container is
# meant to debug (the development stage, the dev overlay), which gets the start-up checks.
check_mode() {
    case "$(printf '%s' "${DEBUG:-false}" | tr '[:upper:]' '[:lower:]')" in
        1 | true | yes | on) echo "--startup" ;;
        *) echo "--deploy" ;;
    esac
}

startup_checks() {
    if [ "${NEXUS_SKIP_CHECKS:-0}" = "1" ]; then
        log "start-up checks skipped (NEXUS_SKIP_CHECKS=1)"
        return 0
    fi
    python manage.py nexus_check "$(check_mode)" || {
        status=$?
        log "start-up checks failed (exit $status); not starting the server"
        exit "$status"
    }
    if [ "${NEXUS_WARMUP:-0}" = "1" ]; then
        python manage.py nexus_warmup || {
            status=$?
            log "module cache warm-up failed (exit $status)"
            exit "$status"
        }
    fi
}

whole_seconds() {
    case "$2" in
        '' | *[!0-9]*)
            log "$1 must be a whole number of seconds, got '$2'"
            exit 2
            ;;
    esac
}

# What is still to be applied: the unticked lines of `showmigrations --plan`, or, when
# that fails too (database unreachable), its error.
unapplied_migrations() {
    if plan=$(python manage.py showmigrations --plan 2>&1); then
        printf '%s\n' "$plan" | sed -n 's/^\[ \] *//p'
    else
        printf '%s\n' "$plan"
    fi
}

wait_for_migrations() {
    limit="${NEXUS_MIGRATION_WAIT_SECONDS:-300}"
    pause="${NEXUS_MIGRATION_POLL_SECONDS:-5}"
    whole_seconds NEXUS_MIGRATION_WAIT_SECONDS "$limit"
    whole_seconds NEXUS_MIGRATION_POLL_SECONDS "$pause"
    started=$(date +%s)
    while :; do
        if python manage.py migrate --check >/dev/null 2>&1; then
            log "database schema is current"
            return 0
        fi
        pending=$(unapplied_migrations)
        if [ $(($(date +%s) - started)) -ge "$limit" ]; then
            log "schema still not current after ${limit}s; unapplied migrations (is this release's nexus-migrate Job running?):"
            printf '%s\n' "$pending" >&2
            exit 1
        fi
        log "waiting for migrations to be applied (checking again in ${pause}s): $(printf '%s' "$pending" | tr '\n' ' ')"
        sleep "$pause"
    done
}

if [ "$#" -eq 0 ]; then
    set -- serve
fi

case "$1" in
    serve)
        shift
        set -- python manage.py nexus_serve "$@"
        ;;
    migrate)
        shift
        exec python manage.py migrate --noinput "$@"
        ;;
    wait-for-migrations)
        wait_for_migrations
        exit 0
        ;;
    check)
        shift
        exec python manage.py nexus_check "$(check_mode)" "$@"
        ;;
esac

case " $* " in
    *" nexus_serve "*) startup_checks ;;
esac
exec "$@"
