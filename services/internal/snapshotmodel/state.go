package snapshotmodel

// State is an executor pod's state, one of Spark's seven ExecutorPodState
// classes.
type State uint8

// The states, named after Spark's PodPending, PodRunning and so on. The zero
// value is StateUnknown so that a record never carries an unset state.
const (
	StateUnknown State = iota
	StatePending
	StateRunning
	StateSucceeded
	StateFailed
	StateDeleted
	StateTerminating
	numStates
)

var stateNames = [numStates]string{
	StateUnknown:     "unknown",
	StatePending:     "pending",
	StateRunning:     "running",
	StateSucceeded:   "succeeded",
	StateFailed:      "failed",
	StateDeleted:     "deleted",
	StateTerminating: "terminating",
}

// String returns the state's lower-case name, for example "running".
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "invalid"
}

// Final reports whether the state is one of Spark's FinalPodState classes:
// succeeded, failed, deleted and terminating.
func (s State) Final() bool {
	switch s {
	case StateSucceeded, StateFailed, StateDeleted, StateTerminating:
		return true
	default:
		return false
	}
}

// Counts counts executors by state; index it with a State.
type Counts [numStates]int32

// Total is the number of executors counted.
func (c *Counts) Total() int32 {
	var n int32
	for _, v := range c {
		n += v
	}
	return n
}
