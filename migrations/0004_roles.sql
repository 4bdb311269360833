-- Who may do what (issue 5, item 4): three group roles, granted exactly what each kind of client
-- needs. Logins are members of one group each (scripts/lan_credentials.py makes them); nothing here
-- has LOGIN or a password.
--
--   asr_gateway  the HTTP gateway: tasks, segments, live sessions, the worker registry (read), and
--                deferring / cancelling / deleting Procrastinate jobs.
--   asr_worker   a worker on any machine: claims and updates tasks, writes segments, its registry
--                row, live tables, and what the Procrastinate worker itself runs (fetch, finish,
--                retry, heartbeats, stalled-job recovery). No DDL, no TRUNCATE, no schema_version.
--   asr_reader   people querying history with SQL: SELECT on the views history and
--                history_segments, nothing else.
--
-- Roles are cluster-wide and this migration runs once per database, possibly in several databases
-- at once (tests): the role creation tolerates a role that exists or is being created concurrently.
-- The migrating user needs CREATEROLE (the embedded cluster's owner `lanasr` has it; compose's
-- POSTGRES_USER is a superuser). Grants are per database and name objects explicitly: a later
-- migration that adds a table must grant it to the groups that need it (nothing is granted by
-- default privileges, on purpose).
--
-- Procrastinate's functions are SECURITY INVOKER and its triggers run as the user whose statement
-- fired them, so the groups need the tables those functions and triggers touch (procrastinate_events
-- and procrastinate_periodic_defers through triggers), not just EXECUTE. Foreign-key actions
-- (ON DELETE CASCADE / SET NULL) run as the table owner and need no grant.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['asr_gateway', 'asr_worker', 'asr_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created by a concurrent migration of another database
            END;
        END IF;
    END LOOP;
END;
$$;

-- Nobody but the owner creates objects in the schema (the PostgreSQL 15+ default, made explicit
-- for clusters initialised by older versions). The statement is a no-op warning when the migrating
-- user does not own the schema.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO asr_gateway, asr_worker, asr_reader;

-- Temporary tables are not needed by any client.
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO asr_gateway, asr_worker, asr_reader', current_database());
END;
$$;

-- Start from nothing for the groups (re-running this file, or a group that existed before).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM asr_gateway, asr_worker, asr_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM asr_gateway, asr_worker, asr_reader;
-- Functions are executable by PUBLIC by default: only the groups that call them may.
REVOKE EXECUTE ON FUNCTION
    procrastinate_cancel_job_v1(bigint, boolean, boolean),
    procrastinate_defer_jobs_v1(procrastinate_job_to_defer_v1[]),
    procrastinate_defer_periodic_job_v2(character varying, character varying, character varying,
        character varying, integer, character varying, bigint, jsonb),
    procrastinate_fetch_job_v2(character varying[], bigint),
    procrastinate_finish_job_v1(bigint, procrastinate_job_status, boolean),
    procrastinate_prune_stalled_workers_v1(double precision),
    procrastinate_register_worker_v1(),
    procrastinate_retry_job_v1(bigint, timestamp with time zone, integer, character varying, character varying),
    procrastinate_retry_job_v2(bigint, timestamp with time zone, integer, character varying, character varying),
    procrastinate_unregister_worker_v1(bigint),
    procrastinate_update_heartbeat_v1(bigint),
    procrastinate_notify_queue_abort_job_v1(),
    procrastinate_notify_queue_job_inserted_v1(),
    procrastinate_trigger_abort_requested_events_procedure_v1(),
    procrastinate_trigger_function_scheduled_events_v1(),
    procrastinate_trigger_function_status_events_insert_v1(),
    procrastinate_trigger_function_status_events_update_v1(),
    procrastinate_unlink_periodic_defers_v1(),
    asr_notify_live_chunk(),
    asr_notify_transcription(),
    asr_notify_worker(),
    asr_touch_updated_at()
FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- asr_gateway (gateway-go/postgres/internal/dbsqlc/*.sql)

GRANT SELECT, INSERT, UPDATE, DELETE ON transcriptions, segments TO asr_gateway;
GRANT SELECT, INSERT, UPDATE, DELETE ON live_sessions, live_chunks, live_sentences TO asr_gateway;
GRANT SELECT ON workers TO asr_gateway;
-- Defer (INSERT through procrastinate_defer_jobs_v1), cancel (UPDATE), delete, queue position.
GRANT SELECT, INSERT, UPDATE, DELETE ON procrastinate_jobs TO asr_gateway;
-- Written by the status/scheduled triggers of procrastinate_jobs.
GRANT SELECT, INSERT ON procrastinate_events TO asr_gateway;
-- Touched by the BEFORE DELETE trigger of procrastinate_jobs.
GRANT SELECT, UPDATE ON procrastinate_periodic_defers TO asr_gateway;
-- Lost live sessions: whose Procrastinate worker is stale.
GRANT SELECT ON procrastinate_workers TO asr_gateway;
GRANT USAGE ON SEQUENCE procrastinate_jobs_id_seq, procrastinate_events_id_seq TO asr_gateway;
GRANT EXECUTE ON FUNCTION
    procrastinate_defer_jobs_v1(procrastinate_job_to_defer_v1[]),
    procrastinate_cancel_job_v1(bigint, boolean, boolean)
TO asr_gateway;

-- ---------------------------------------------------------------------------------------------
-- asr_worker (worker-py/src/asr_worker/db.py, recovery.py, live.py, and Procrastinate 3.10's
-- procrastinate/sql/queries.sql as run by its worker and job manager)

-- Claim, progress, result, failure, requeue; never create or delete a task.
GRANT SELECT, UPDATE ON transcriptions TO asr_worker;
-- Results are rewritten as a whole (DELETE + INSERT under the attempt guard).
GRANT SELECT, INSERT, DELETE ON segments TO asr_worker;
-- The registry: upsert its own row, heartbeat, and mark silent workers gone (recovery).
GRANT SELECT, INSERT, UPDATE ON workers TO asr_worker;
-- Live: read chunks (and drop them once the session is stored), cut and finalise sentences.
GRANT SELECT, UPDATE ON live_sessions TO asr_worker;
GRANT SELECT, DELETE ON live_chunks TO asr_worker;
GRANT SELECT, INSERT, UPDATE ON live_sentences TO asr_worker;
-- Procrastinate: fetch/finish/retry/cancel jobs, defer `final` jobs, delete finished jobs
-- (finish_job with delete_job, delete_old_jobs), read events (stalled-job queries), and write
-- them through the job triggers; register, heartbeat, unregister and prune workers.
GRANT SELECT, INSERT, UPDATE, DELETE ON procrastinate_jobs TO asr_worker;
GRANT SELECT, INSERT ON procrastinate_events TO asr_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON procrastinate_workers TO asr_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON procrastinate_periodic_defers TO asr_worker;
GRANT USAGE ON SEQUENCE
    procrastinate_jobs_id_seq, procrastinate_events_id_seq,
    procrastinate_periodic_defers_id_seq, procrastinate_workers_id_seq
TO asr_worker;
GRANT EXECUTE ON FUNCTION
    procrastinate_cancel_job_v1(bigint, boolean, boolean),
    procrastinate_defer_jobs_v1(procrastinate_job_to_defer_v1[]),
    procrastinate_defer_periodic_job_v2(character varying, character varying, character varying,
        character varying, integer, character varying, bigint, jsonb),
    procrastinate_fetch_job_v2(character varying[], bigint),
    procrastinate_finish_job_v1(bigint, procrastinate_job_status, boolean),
    procrastinate_prune_stalled_workers_v1(double precision),
    procrastinate_register_worker_v1(),
    procrastinate_retry_job_v1(bigint, timestamp with time zone, integer, character varying, character varying),
    procrastinate_retry_job_v2(bigint, timestamp with time zone, integer, character varying, character varying),
    procrastinate_unregister_worker_v1(bigint),
    procrastinate_update_heartbeat_v1(bigint)
TO asr_worker;

-- ---------------------------------------------------------------------------------------------
-- asr_reader: the two pinned views only. A view reads its tables with its owner's rights, so the
-- reader needs (and gets) nothing on the tables themselves.

GRANT SELECT ON history, history_segments TO asr_reader;
