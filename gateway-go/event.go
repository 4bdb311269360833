package asr

import (
	"encoding/json"
)

// Event types, as written by the database's notify triggers.
const (
	EventTypeTask   = "task"
	EventTypeWorker = "worker"
)

// Event is one notification from channel asr_events.
type Event struct {
	// Type is EventTypeTask or EventTypeWorker.
	Type string
	// TaskID is the task the event concerns, "" for worker events.
	TaskID string
	// Payload is the JSON object written by the trigger, unchanged.
	Payload json.RawMessage
}

// ParseEvent decodes a notification payload. Returns EINVALID when payload is
// not a JSON object with a type.
func ParseEvent(payload []byte) (Event, error) {
	var head struct {
		Type   string `json:"type"`
		TaskID string `json:"task_id"`
	}
	if err := json.Unmarshal(payload, &head); err != nil || head.Type == "" {
		return Event{}, Errorf(EINVALID, "Malformed event payload.")
	}
	return Event{Type: head.Type, TaskID: head.TaskID, Payload: json.RawMessage(payload)}, nil
}

// Subscription delivers events to one subscriber until closed. A subscriber
// that does not keep up loses events rather than slowing the others.
type Subscription interface {
	// C returns the channel that receives events. It is closed by Close.
	C() <-chan Event
	// Close stops delivery and releases the subscription.
	Close()
}

// EventService fans events out to subscribers.
type EventService interface {
	// Subscribe returns a new subscription to every event.
	Subscribe() Subscription
}
