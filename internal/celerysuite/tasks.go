package celerysuite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/canvas"
)

// module is the Python module of the suite's tasks.
const module = "t.integration.tasks"

// name is the suite's name of a task.
func name(task string) string { return module + "." + task }

// Deps are what the tasks use.
type Deps struct {
	// Sender publishes the canvases tasks build (chain_add, replace, ...); required.
	Sender *canvas.Sender
	// Redis is the suite's get_redis_connection(): database 0 of REDIS_HOST (redis_echo,
	// redis_count, errback_old_style, second_order_replace*); required.
	Redis *redis.Client
	// Logger receives print_unicode's lines (default: slog.Default()).
	Logger *slog.Logger
}

// RedisURL is the suite's get_redis_connection() target: StrictRedis(host=REDIS_HOST), port 6379,
// database 0 (REDIS_HOST empty: localhost).
func RedisURL(getenv func(string) string) string {
	host := getenv("REDIS_HOST")
	if host == "" {
		host = "localhost"
	}
	return "redis://" + host + ":6379/0"
}

// suite holds the dependencies and the per-process state some tasks keep (the retry task's
// attempt counter, an attribute of the task object in Python).
type suite struct {
	Deps
	mu       sync.Mutex
	attempts int
}

// Register registers the suite's task set and the built-in tasks it needs (celery.accumulate,
// celery.ping) in reg.
func Register(reg *celery.Registry, d Deps) error {
	if d.Sender == nil || d.Redis == nil {
		return errors.New("celerysuite: Register needs a Sender and a Redis client")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	s := &suite{Deps: d}
	if _, ok := reg.Options(canvas.TaskAccumulate); !ok {
		if err := canvas.RegisterBuiltins(reg); err != nil {
			return err
		}
	}
	regs := []error{
		celery.RegisterE(reg, "celery.ping", ping),
		celery.RegisterE(reg, name("identity"), identity),
		celery.RegisterE(reg, name("add"), add),
		celery.RegisterE(reg, name("write_to_file_and_return_int"), writeToFileAndReturnInt),
		celery.RegisterE(reg, name("add_not_typed"), addNotTyped),
		celery.RegisterE(reg, name("add_ignore_result"), addNotTyped, celery.IgnoreResult(true)),
		celery.RegisterE(reg, name("raise_error"), raiseError),
		celery.RegisterE(reg, name("chain_add"), s.chainAdd),
		celery.RegisterE(reg, name("chord_add"), s.chordAdd),
		celery.RegisterE(reg, name("delayed_sum"), delayedSum),
		celery.RegisterE(reg, name("delayed_sum_with_soft_guard"), delayedSumWithSoftGuard),
		celery.RegisterE(reg, name("tsum"), tsum),
		celery.RegisterE(reg, name("add_replaced"), s.addReplaced),
		celery.RegisterE(reg, name("replace_with_chain"), s.replaceWithChain),
		celery.RegisterE(reg, name("replace_with_chain_which_raises"), s.replaceWithChainWhichRaises),
		celery.RegisterE(reg, name("replace_with_empty_chain"), s.replaceWithEmptyChain),
		celery.RegisterE(reg, name("add_to_all"), s.addToAll),
		celery.RegisterE(reg, name("add_to_all_to_chord"), s.addToAllToChord),
		celery.RegisterE(reg, name("add_chord_to_chord"), s.addChordToChord),
		celery.RegisterE(reg, name("print_unicode"), s.printUnicode),
		celery.RegisterE(reg, name("return_exception"), returnException),
		celery.RegisterE(reg, name("sleeping"), sleeping),
		celery.RegisterE(reg, name("ids"), ids),
		celery.RegisterE(reg, name("collect_ids"), collectIDs),
		celery.RegisterE(reg, name("retry"), s.retry, celery.DefaultRetryDelay(time.Second)),
		celery.RegisterE(reg, name("retry_once"), retryOnce, celery.MaxRetries(1)),
		celery.RegisterE(reg, name("retry_once_priority"), retryOncePriority, celery.MaxRetries(1)),
		celery.RegisterE(reg, name("redis_echo"), s.redisEcho),
		celery.RegisterE(reg, name("redis_count"), s.redisCount),
		celery.RegisterE(reg, name("second_order_replace1"), s.secondOrderReplace1),
		celery.RegisterE(reg, name("second_order_replace2"), s.secondOrderReplace2),
		celery.RegisterE(reg, name("build_chain_inside_task"), s.buildChainInsideTask),
		celery.RegisterE(reg, name("fail"), fail),
		celery.RegisterE(reg, name("fail_replaced"), s.failReplaced),
		celery.RegisterE(reg, name("return_priority"), returnPriority),
		celery.RegisterE(reg, name("return_properties"), returnProperties),
		celery.RegisterE(reg, "auto_retry_class_task", autoRetryClassTask, celery.MaxRetries(1),
			celery.AutoRetry(isValueError, time.Second)),
		celery.RegisterE(reg, name("rebuild_signature"), rebuildSignature),
		celery.RegisterE(reg, name("errback_old_style"), s.errbackOldStyle),
		celery.RegisterE(reg, name("errback_new_style"), s.errbackNewStyle, celery.RequestErrback()),
	}
	for n, build := range nestedSignatures {
		regs = append(regs, celery.RegisterE(reg, name("return_nested_signature_"+n), returnSignature(build)))
	}
	return errors.Join(regs...)
}

type none struct{}

// null is Python's None as a result.
var null = json.RawMessage("null")

func ping(context.Context, *celery.Task[none]) (string, error) { return "pong", nil }

type xArgs struct {
	X json.RawMessage `celery:"x"`
}

func identity(_ context.Context, t *celery.Task[xArgs]) (json.RawMessage, error) {
	return t.Args.X, nil
}

type addArgs struct {
	X json.RawMessage `celery:"x"`
	Y json.RawMessage `celery:"y"`
	Z json.RawMessage `celery:"z,optional"`
}

// add(x, y, z=None): x + y + z when z, else x + y.
func add(_ context.Context, t *celery.Task[addArgs]) (json.RawMessage, error) {
	r, err := pyAdd(t.Args.X, t.Args.Y)
	if err != nil || !pyTruthy(t.Args.Z) {
		return r, err
	}
	return pyAdd(r, t.Args.Z)
}

type xyArgs struct {
	X json.RawMessage `celery:"x"`
	Y json.RawMessage `celery:"y"`
}

func addNotTyped(_ context.Context, t *celery.Task[xyArgs]) (json.RawMessage, error) {
	return pyAdd(t.Args.X, t.Args.Y)
}

type fileArgs struct {
	FileName string          `celery:"file_name"`
	I        json.RawMessage `celery:"i"`
}

func writeToFileAndReturnInt(_ context.Context, t *celery.Task[fileArgs]) (json.RawMessage, error) {
	f, err := os.OpenFile(t.Args.FileName, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	var i any
	_ = json.Unmarshal(t.Args.I, &i)
	_, err = fmt.Fprintf(f, "%s\n", pyStr(t.Args.I))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return t.Args.I, err
}

// pyStr is str(v) of a JSON scalar: a string unquoted, anything else as JSON.
func pyStr(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

type starArgs struct {
	Args []json.RawMessage `celery:"*"`
}

func raiseError(context.Context, *celery.Task[starArgs]) (json.RawMessage, error) {
	return nil, &valueError{"deliberate error"}
}

func (s *suite) chainAdd(ctx context.Context, t *celery.Task[xyArgs]) (json.RawMessage, error) {
	c := canvas.Chain(canvas.S(name("add"), t.Args.X, t.Args.X), canvas.S(name("add"), t.Args.Y))
	_, err := s.Sender.SendFrom(ctx, &t.Request, c)
	return null, err
}

func (s *suite) chordAdd(ctx context.Context, t *celery.Task[xyArgs]) (json.RawMessage, error) {
	c := canvas.Chord(canvas.Group(canvas.S(name("add"), t.Args.X, t.Args.X)), canvas.S(name("add"), t.Args.Y))
	_, err := s.Sender.SendFrom(ctx, &t.Request, c)
	return null, err
}

type sumArgs struct {
	Numbers   json.RawMessage `celery:"numbers"`
	PauseTime *float64        `celery:"pause_time"`
}

func pause(p *float64) time.Duration {
	if p == nil {
		return time.Second
	}
	return time.Duration(*p * float64(time.Second))
}

// sleep waits d or until ctx ends (a soft time limit, a revoke with terminate, a cold shutdown).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func delayedSum(ctx context.Context, t *celery.Task[sumArgs]) (json.RawMessage, error) {
	if err := sleep(ctx, pause(t.Args.PauseTime)); err != nil {
		return nil, err
	}
	return pySum(t.Args.Numbers)
}

// delayedSumWithSoftGuard returns 0 when the soft time limit interrupts its sleep.
func delayedSumWithSoftGuard(ctx context.Context, t *celery.Task[sumArgs]) (json.RawMessage, error) {
	if err := sleep(ctx, pause(t.Args.PauseTime)); err != nil {
		if errors.Is(err, celery.ErrSoftTimeLimit) {
			return json.RawMessage("0"), nil
		}
		return nil, err
	}
	return pySum(t.Args.Numbers)
}

type numsArgs struct {
	Nums json.RawMessage `celery:"nums"`
}

func tsum(_ context.Context, t *celery.Task[numsArgs]) (json.RawMessage, error) {
	return pySum(t.Args.Nums)
}

func (s *suite) addReplaced(ctx context.Context, t *celery.Task[xyArgs]) (json.RawMessage, error) {
	return nil, s.Sender.Replace(ctx, &t.Request, canvas.S(name("add"), t.Args.X, t.Args.Y))
}

// linkMsgArgs are (*args, link_msg=None).
type linkMsgArgs struct {
	Args    []json.RawMessage
	LinkMsg json.RawMessage
}

// UnmarshalCelery takes every positional argument and the keyword-only link_msg.
func (a *linkMsgArgs) UnmarshalCelery(args []json.RawMessage, kwargs map[string]json.RawMessage) error {
	a.Args = args
	for k, v := range kwargs {
		if k != "link_msg" {
			return fmt.Errorf("got an unexpected keyword argument '%s'", k)
		}
		a.LinkMsg = v
	}
	return nil
}

// linkSig is the suite's link_sig: redis_echo.s(), or redis_echo.si(link_msg) given one.
func linkSig(msg json.RawMessage) canvas.Signature {
	if len(msg) == 0 || string(msg) == "null" {
		return canvas.S(name("redis_echo"))
	}
	return canvas.SI(name("redis_echo"), msg)
}

func anyArgs(raw []json.RawMessage) []any {
	out := make([]any, len(raw))
	for i, r := range raw {
		out[i] = r
	}
	return out
}

func (s *suite) replaceWithChain(ctx context.Context, t *celery.Task[linkMsgArgs]) (json.RawMessage, error) {
	c := canvas.Chain(canvas.S(name("identity"), anyArgs(t.Args.Args)...), canvas.S(name("identity")))
	c = c.Link(linkSig(t.Args.LinkMsg))
	return nil, s.Sender.Replace(ctx, &t.Request, c)
}

func (s *suite) replaceWithChainWhichRaises(ctx context.Context, t *celery.Task[linkMsgArgs]) (json.RawMessage, error) {
	c := canvas.Chain(canvas.S(name("identity"), anyArgs(t.Args.Args)...), canvas.S(name("raise_error")))
	c = c.LinkError(linkSig(t.Args.LinkMsg))
	return nil, s.Sender.Replace(ctx, &t.Request, c)
}

func (s *suite) replaceWithEmptyChain(ctx context.Context, t *celery.Task[starArgs]) (json.RawMessage, error) {
	return nil, s.Sender.Replace(ctx, &t.Request, canvas.Chain())
}

type numsValArgs struct {
	Nums []json.RawMessage `celery:"nums"`
	Val  json.RawMessage   `celery:"val"`
}

func (s *suite) addToAll(ctx context.Context, t *celery.Task[numsValArgs]) (json.RawMessage, error) {
	subtasks := make([]canvas.Signature, len(t.Args.Nums))
	for i, n := range t.Args.Nums {
		subtasks[i] = canvas.S(name("add"), n, t.Args.Val)
	}
	return nil, s.Sender.Replace(ctx, &t.Request, canvas.Group(subtasks...))
}

type unicodeArgs struct {
	LogMessage   *string `celery:"log_message"`
	PrintMessage *string `celery:"print_message"`
}

func (s *suite) printUnicode(_ context.Context, t *celery.Task[unicodeArgs]) (json.RawMessage, error) {
	logMsg, printMsg := "håå®ƒ valmuefrø", "hiöäüß"
	if t.Args.LogMessage != nil {
		logMsg = *t.Args.LogMessage
	}
	if t.Args.PrintMessage != nil {
		printMsg = *t.Args.PrintMessage
	}
	s.Logger.Warn(logMsg, "task_id", t.ID)
	fmt.Fprintln(os.Stdout, printMsg)
	return null, nil
}

type eArgs struct {
	E json.RawMessage `celery:"e"`
}

func returnException(_ context.Context, t *celery.Task[eArgs]) ([]json.RawMessage, error) {
	return []json.RawMessage{t.Args.E, json.RawMessage("true")}, nil
}

type sleepingArgs struct {
	I    float64                    `celery:"i"`
	Rest map[string]json.RawMessage `celery:"**"`
}

func sleeping(ctx context.Context, t *celery.Task[sleepingArgs]) (json.RawMessage, error) {
	return null, sleep(ctx, time.Duration(t.Args.I*float64(time.Second)))
}

type iArgs struct {
	I json.RawMessage `celery:"i"`
}

// orNone is a request id as Python shows it: None when unset.
func orNone(id string) any {
	if id == "" {
		return nil
	}
	return id
}

func ids(_ context.Context, t *celery.Task[iArgs]) ([]any, error) {
	return []any{orNone(t.RootID), orNone(t.ParentID), t.Args.I}, nil
}

type resIArgs struct {
	Res json.RawMessage `celery:"res"`
	I   json.RawMessage `celery:"i"`
}

func collectIDs(_ context.Context, t *celery.Task[resIArgs]) ([]any, error) {
	return []any{t.Args.Res, []any{orNone(t.RootID), orNone(t.ParentID), t.Args.I}}, nil
}

type retryArgs struct {
	ReturnValue json.RawMessage `celery:"return_value,optional"`
}

// retry fails with ExpectedException after its retries, or returns return_value after three.
func (s *suite) retry(_ context.Context, t *celery.Task[retryArgs]) (json.RawMessage, error) {
	if pyTruthy(t.Args.ReturnValue) {
		s.mu.Lock()
		attempt := s.attempts
		if attempt >= 3 {
			s.attempts = 0
			s.mu.Unlock()
			return t.Args.ReturnValue, nil
		}
		s.attempts = attempt + 1
		s.mu.Unlock()
	}
	return nil, t.Retry(&ExpectedException{Args: []any{}}, celery.Countdown(5*time.Second))
}

// retryOnceArgs are (*args, expires=60.0, max_retries=1, countdown=0.1).
type retryOnceArgs struct {
	MaxRetries int
	Countdown  *float64
}

// UnmarshalCelery takes any positional arguments and the keyword-only expires, max_retries and
// countdown (None: the task's default retry delay).
func (a *retryOnceArgs) UnmarshalCelery(_ []json.RawMessage, kwargs map[string]json.RawMessage) error {
	a.MaxRetries = 1
	cd := 0.1
	a.Countdown = &cd
	for k, v := range kwargs {
		var err error
		switch k {
		case "expires":
		case "max_retries":
			err = json.Unmarshal(v, &a.MaxRetries)
		case "countdown":
			a.Countdown = nil
			err = json.Unmarshal(v, &a.Countdown)
		default:
			return fmt.Errorf("got an unexpected keyword argument '%s'", k)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func (a *retryOnceArgs) retry(t *celery.Request) error {
	opts := []celery.RetryOption{celery.WithMaxRetries(a.MaxRetries)}
	if a.Countdown != nil {
		opts = append(opts, celery.Countdown(time.Duration(*a.Countdown*float64(time.Second))))
	}
	return t.Retry(nil, opts...)
}

func retryOnce(_ context.Context, t *celery.Task[retryOnceArgs]) (int, error) {
	if t.Retries > 0 {
		return t.Retries, nil
	}
	return 0, t.Args.retry(&t.Request)
}

// priority is delivery_info['priority'] as Python shows it: None when the message had none.
func priority(t *celery.Request) any {
	if p, ok := t.Properties()["priority"]; ok {
		return p
	}
	return nil
}

func retryOncePriority(_ context.Context, t *celery.Task[retryOnceArgs]) (any, error) {
	if t.Retries > 0 {
		return priority(&t.Request), nil
	}
	return nil, t.Args.retry(&t.Request)
}

type echoArgs struct {
	Message  json.RawMessage `celery:"message"`
	RedisKey *string         `celery:"redis_key"`
}

func (s *suite) redisEcho(ctx context.Context, t *celery.Task[echoArgs]) (json.RawMessage, error) {
	key := "redis-echo"
	if t.Args.RedisKey != nil {
		key = *t.Args.RedisKey
	}
	return null, s.Redis.RPush(ctx, key, pyStr(t.Args.Message)).Err()
}

type countArgs struct {
	RedisKey *string `celery:"redis_key"`
}

func (s *suite) redisCount(ctx context.Context, t *celery.Task[countArgs]) (json.RawMessage, error) {
	key := "redis-count"
	if t.Args.RedisKey != nil {
		key = *t.Args.RedisKey
	}
	return null, s.Redis.Incr(ctx, key).Err()
}

type stateArgs struct {
	State bool `celery:"state,optional"`
}

func (s *suite) secondOrderReplace1(ctx context.Context, t *celery.Task[stateArgs]) (json.RawMessage, error) {
	if t.Args.State {
		return null, s.Redis.RPush(ctx, "redis-echo", "Out A").Err()
	}
	if err := s.Redis.RPush(ctx, "redis-echo", "In A").Err(); err != nil {
		return nil, err
	}
	c := canvas.Chain(canvas.S(name("second_order_replace2")), canvas.SI(name("second_order_replace1")).Kwarg("state", true))
	return nil, s.Sender.Replace(ctx, &t.Request, c)
}

func (s *suite) secondOrderReplace2(ctx context.Context, t *celery.Task[stateArgs]) (json.RawMessage, error) {
	if t.Args.State {
		return null, s.Redis.RPush(ctx, "redis-echo", "Out B").Err()
	}
	if err := s.Redis.RPush(ctx, "redis-echo", "In B").Err(); err != nil {
		return nil, err
	}
	c := canvas.Chain(canvas.S(name("redis_echo"), "In/Out C"), canvas.SI(name("second_order_replace2")).Kwarg("state", true))
	return nil, s.Sender.Replace(ctx, &t.Request, c)
}

// buildChainInsideTask sends add(1,1) | add(2) | group(add(3), add(4)) | add(5) and returns its
// AsyncResult as Celery stores a result object: its as_tuple().
func (s *suite) buildChainInsideTask(ctx context.Context, t *celery.Task[none]) (json.RawMessage, error) {
	c := canvas.Chain(canvas.S(name("add"), 1, 1), canvas.S(name("add"), 2),
		canvas.Group(canvas.S(name("add"), 3), canvas.S(name("add"), 4)), canvas.S(name("add"), 5))
	res, err := s.Sender.SendFrom(ctx, &t.Request, c)
	if err != nil {
		return nil, err
	}
	return res.AsTuple(), nil
}

func fail(_ context.Context, t *celery.Task[starArgs]) (json.RawMessage, error) {
	return nil, &ExpectedException{Args: append([]any{"Task expected to fail"}, anyArgs(t.Args.Args)...)}
}

func (s *suite) failReplaced(ctx context.Context, t *celery.Task[starArgs]) (json.RawMessage, error) {
	return nil, s.Sender.Replace(ctx, &t.Request, canvas.SI(name("fail"), anyArgs(t.Args.Args)...))
}

func returnPriority(_ context.Context, t *celery.Task[starArgs]) (string, error) {
	p := priority(&t.Request)
	if p == nil {
		return "Priority: None", nil
	}
	return fmt.Sprintf("Priority: %v", p), nil
}

func returnProperties(_ context.Context, t *celery.Task[none]) (map[string]any, error) {
	return t.Properties(), nil
}

func isValueError(err error) bool {
	var v *valueError
	return errors.As(err, &v)
}

func autoRetryClassTask(_ context.Context, t *celery.Task[none]) (int, error) {
	if t.Retries > 0 {
		return t.Retries, nil
	}
	return 0, &valueError{}
}

type requestIDArgs struct {
	RequestID string `celery:"request_id"`
}

// errbackOldStyle counts in Redis under the failed task's id and returns it.
func (s *suite) errbackOldStyle(ctx context.Context, t *celery.Task[requestIDArgs]) (string, error) {
	if err := s.Redis.Incr(ctx, t.Args.RequestID).Err(); err != nil {
		return "", err
	}
	return t.Args.RequestID, nil
}

type errbackArgs struct {
	Request struct {
		ID string `json:"id"`
	} `celery:"request"`
	Exc json.RawMessage `celery:"exc"`
	TB  json.RawMessage `celery:"tb"`
}

// errbackNewStyle is errback_new_style(request, exc, tb): it counts under request.id and returns
// it. Registered as a new-style errback, so a failing task's Go worker gives it the request.
func (s *suite) errbackNewStyle(ctx context.Context, t *celery.Task[errbackArgs]) (string, error) {
	if err := s.Redis.Incr(ctx, t.Args.Request.ID).Err(); err != nil {
		return "", err
	}
	return t.Args.Request.ID, nil
}

// addToAllToChord is add_to_all_to_chord(nums, val): it adds add(num, val) for each num to its
// chord (Task.add_to_chord) and returns 0.
func (s *suite) addToAllToChord(ctx context.Context, t *celery.Task[numsValArgs]) (int, error) {
	for _, n := range t.Args.Nums {
		if _, err := s.Sender.AddToChord(ctx, &t.Request, canvas.S(name("add"), n, t.Args.Val)); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// addChordToChord is add_chord_to_chord(nums, val): it adds group(add(num, val), ...) | tsum to
// its chord and returns 0.
func (s *suite) addChordToChord(ctx context.Context, t *celery.Task[numsValArgs]) (int, error) {
	subtasks := make([]canvas.Signature, len(t.Args.Nums))
	for i, n := range t.Args.Nums {
		subtasks[i] = canvas.S(name("add"), n, t.Args.Val)
	}
	_, err := s.Sender.AddToChord(ctx, &t.Request, canvas.Chain(canvas.Group(subtasks...), canvas.S(name("tsum"))))
	return 0, err
}
