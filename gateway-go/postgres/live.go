package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/postgres/internal/dbsqlc"
)

// Ensure the interface is implemented.
var _ asr.LiveService = (*LiveService)(nil)

// LiveService implements asr.LiveService on the live_* tables and Procrastinate.
type LiveService struct {
	db *DB
}

// NewLiveService returns a LiveService on db.
func NewLiveService(db *DB) *LiveService {
	return &LiveService{db: db}
}

// LiveWorkerAvailable reports whether an active worker serves queue live.
func (s *LiveService) LiveWorkerAvailable(ctx context.Context, timeout time.Duration) (bool, error) {
	ok, err := s.db.queries().WorkerLiveAvailable(ctx, timeout.Seconds())
	return ok, wrapErr(err)
}

// CreateLiveSession defers the session's asr.live_session job and inserts
// its transcription and live_sessions rows in one transaction. Returns
// ECONFLICT when the id is taken.
func (s *LiveService) CreateLiveSession(ctx context.Context, c *asr.LiveSessionCreate) (*asr.LiveSession, error) {
	var (
		row   dbsqlc.LiveSession
		jobID int64
	)
	chunkSize := make([]int32, len(c.Config.ChunkSize))
	for i, n := range c.Config.ChunkSize {
		chunkSize[i] = int32(n)
	}
	err := s.db.inTx(ctx, func(q *dbsqlc.Queries) error {
		var err error
		jobID, err = q.QueueDeferLiveSession(ctx, dbsqlc.QueueDeferLiveSessionParams{
			Lock: "live:" + c.ID.String(), SessionID: c.ID.String(),
		})
		if err != nil {
			return err
		}
		if _, err := q.TaskInsertLive(ctx, dbsqlc.TaskInsertLiveParams{
			ID: c.ID, Filename: c.Filename, Hotwords: c.Config.Hotwords, JobID: &jobID,
		}); err != nil {
			return err
		}
		row, err = q.LiveSessionInsert(ctx, dbsqlc.LiveSessionInsertParams{
			ID: c.ID, Mode: c.Config.Mode, WavName: c.Config.WavName, AudioFs: int32(c.Config.AudioFS),
			ChunkSize: chunkSize, ChunkInterval: int32(c.Config.ChunkInterval),
			Hotwords: c.Config.Hotwords, Itn: c.Config.ITN, ClientAddr: c.ClientAddr,
		})
		return err
	})
	if isUniqueViolation(err) {
		return nil, asr.Errorf(asr.ECONFLICT, "Live session %s already exists.", c.ID)
	} else if err != nil {
		return nil, wrapErr(err)
	}
	cs := make([]int, len(row.ChunkSize))
	for i, n := range row.ChunkSize {
		cs[i] = int(n)
	}
	return &asr.LiveSession{
		ID: row.ID, Mode: row.Mode, WavName: row.WavName, AudioFS: int(row.AudioFs), ChunkSize: cs,
		ChunkInterval: int(row.ChunkInterval), Hotwords: row.Hotwords, ITN: row.Itn, State: row.State,
		Chunks: int(row.Chunks), ClientAddr: row.ClientAddr, JobID: jobID, CreatedAt: row.CreatedAt,
	}, nil
}

// AddLiveChunk inserts one chunk; its trigger notifies asr_live_chunks.
func (s *LiveService) AddLiveChunk(ctx context.Context, id uuid.UUID, seq int, pcm []byte, isLast bool) error {
	if pcm == nil {
		pcm = []byte{}
	}
	return wrapErr(s.db.queries().LiveChunkInsert(ctx, dbsqlc.LiveChunkInsertParams{
		SessionID: id, Seq: int32(seq), Pcm: pcm, IsLast: isLast,
	}))
}

// EndLiveSession marks the session ended and records its audio on the
// transcription, in one transaction.
func (s *LiveService) EndLiveSession(ctx context.Context, e *asr.LiveSessionEnd) error {
	return wrapErr(s.db.inTx(ctx, func(q *dbsqlc.Queries) error {
		if err := q.LiveSessionEnd(ctx, dbsqlc.LiveSessionEndParams{ID: e.ID, Chunks: int32(e.Chunks)}); err != nil {
			return err
		}
		if e.AudioKey == "" {
			return nil
		}
		return q.TaskSetLiveAudio(ctx, dbsqlc.TaskSetLiveAudioParams{
			ID: e.ID, AudioKey: &e.AudioKey, AudioSize: &e.AudioSize, DurationS: &e.DurationS,
		})
	}))
}

// LostLiveSessions returns those of ids whose worker stopped heartbeating.
func (s *LiveService) LostLiveSessions(ctx context.Context, ids []uuid.UUID, timeout time.Duration) ([]uuid.UUID, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	lost, err := s.db.queries().LiveSessionListLost(ctx, dbsqlc.LiveSessionListLostParams{
		SessionIds: ids, TimeoutS: timeout.Seconds(),
	})
	return lost, wrapErr(err)
}
