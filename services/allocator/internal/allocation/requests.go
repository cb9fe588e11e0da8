package allocation

import "time"

// request is an executor pod the allocator asked for and has not yet seen in
// a snapshot.
type request struct {
	rpID    int32
	created time.Time
	// restored marks a pod the API server had when the allocator was
	// restored, rather than one this allocator requested (see
	// AllocatorConfig.Existing).
	restored bool
}

// requests is an insertion-ordered set of executor pod requests, Spark's
// LinkedHashMap of newly created executors. Insertion order is creation
// order, and the excess deletion takes the oldest requests first.
type requests struct {
	order []int64
	byID  map[int64]request
}

func newRequests() *requests {
	return &requests{byID: make(map[int64]request)}
}

func (r *requests) len() int { return len(r.byID) }

func (r *requests) add(id int64, req request) {
	if _, ok := r.byID[id]; !ok {
		r.order = append(r.order, id)
	}
	r.byID[id] = req
}

// removeIf removes the requests for which drop returns true, and returns
// their ids in insertion order.
func (r *requests) removeIf(drop func(id int64, req request) bool) []int64 {
	var removed []int64
	kept := r.order[:0]
	for _, id := range r.order {
		if drop(id, r.byID[id]) {
			removed = append(removed, id)
			delete(r.byID, id)
			continue
		}
		kept = append(kept, id)
	}
	clear(r.order[len(kept):])
	r.order = kept
	return removed
}

// remove removes the given ids.
func (r *requests) remove(ids map[int64]bool) {
	if len(ids) == 0 {
		return
	}
	r.removeIf(func(id int64, _ request) bool { return ids[id] })
}

// forProfile returns the ids requested for rpID, in insertion order.
func (r *requests) forProfile(rpID int32) []int64 {
	var ids []int64
	for _, id := range r.order {
		if r.byID[id].rpID == rpID {
			ids = append(ids, id)
		}
	}
	return ids
}

// each calls fn for every request, in insertion order.
func (r *requests) each(fn func(id int64, req request)) {
	for _, id := range r.order {
		fn(id, r.byID[id])
	}
}
