-- Live sessions (FunASR WebSocket protocol, 2-pass): the gateway writes 600 ms chunks of 16 kHz
-- PCM16 here; the worker holding the session's `live` job reads them, emits partial captions,
-- and cuts sentences whose audio is stored for a `final` job any worker can run.

CREATE TABLE live_sessions (
    id uuid PRIMARY KEY REFERENCES transcriptions (id) ON DELETE CASCADE,
    mode text NOT NULL CHECK (mode IN ('online', 'offline', '2pass')),
    wav_name text NOT NULL DEFAULT '',
    audio_fs integer NOT NULL DEFAULT 16000,
    chunk_size integer[] NOT NULL DEFAULT '{5,10,5}',
    chunk_interval integer NOT NULL DEFAULT 10,
    hotwords text NOT NULL DEFAULT '',
    itn boolean NOT NULL DEFAULT true,
    -- open: audio arriving; ended: the client sent is_speaking=false or went away;
    -- closed: every sentence is final and the transcription is stored; failed: given up.
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'ended', 'closed', 'failed')),
    chunks integer NOT NULL DEFAULT 0,
    client_addr text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    closed_at timestamptz
);

CREATE TABLE live_chunks (
    session_id uuid NOT NULL REFERENCES live_sessions (id) ON DELETE CASCADE,
    seq integer NOT NULL CHECK (seq >= 0),
    -- 16 kHz mono PCM16 little-endian; 19200 bytes (600 ms) except the session's last chunk.
    pcm bytea NOT NULL,
    is_last boolean NOT NULL DEFAULT false,
    -- When the gateway had the chunk's last byte (clock_timestamp: per row, not per transaction).
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE live_sentences (
    session_id uuid NOT NULL REFERENCES live_sessions (id) ON DELETE CASCADE,
    idx integer NOT NULL CHECK (idx >= 0),
    start_ms integer NOT NULL CHECK (start_ms >= 0),
    end_ms integer NOT NULL,
    -- The sentence's audio (16 kHz PCM16), so a worker without the audio store can finalise it.
    pcm bytea NOT NULL,
    partial_text text NOT NULL DEFAULT '',
    final_text text,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    ended_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finalized_at timestamptz,
    PRIMARY KEY (session_id, idx),
    CHECK (end_ms >= start_ms)
);

CREATE FUNCTION asr_notify_live_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('asr_live_chunks', json_build_object(
        'session_id', NEW.session_id, 'seq', NEW.seq, 'is_last', NEW.is_last)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER live_chunks_notify
    AFTER INSERT ON live_chunks
    FOR EACH ROW EXECUTE FUNCTION asr_notify_live_chunk();
