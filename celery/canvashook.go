package celery

import "github.com/forumads/forumads/celery/canvashook"

// Canvas continues Celery canvases after a task has finished (link callbacks, the next chain step,
// errbacks, chord bookkeeping), as WorkerOptions.Canvas. It is [canvashook.Canvas];
// canvas.NewWorkerCanvas makes one.
type Canvas = canvashook.Canvas

// FollowUp is one message a finished task makes the worker publish. It is [canvashook.FollowUp].
type FollowUp = canvashook.FollowUp

// ChordDone is what completing a chord asks the worker to do. It is [canvashook.ChordDone].
type ChordDone = canvashook.ChordDone
