package targets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure a Redis token source.
type RedisOptions struct {
	// Addr is the server's host:port. Default "127.0.0.1:6379".
	Addr string
	// DB is the database number. Default 0.
	DB int
	// Username and Password authenticate (AUTH); both may be empty.
	Username string
	Password string
	// Namespace, when set, prefixes every key: "namespace:token", as in
	// websockify 0.13.
	Namespace string
	// Timeout bounds each lookup, connecting included. Default 2s.
	Timeout time.Duration
	// CacheTTL is how long a found target is remembered. Default 5s;
	// negative turns the cache off.
	CacheTTL time.Duration
	// Allow limits the targets the store may name. Nil allows every target,
	// which only the websockify command line does, with a warning.
	Allow *Allowlist
	// Logger receives one error line when Redis stops answering and one
	// line when it answers again. Default: discard.
	Logger *slog.Logger
}

// Redis resolves tokens through a Redis server in websockify's TokenRedis
// format: the key is the token (or "namespace:token"), the value either
// JSON {"host": "host:port"} or plain "host:port" (also "[v6]:port" and
// "unix_socket:/path"), surrounding spaces ignored. Several wsbridge
// instances behind a load balancer share one token map this way.
//
// When Redis does not answer within the timeout, Resolve returns an error
// wrapping ErrUnavailable: the bridge answers 503 and does not count the
// token as a failed lookup. Targets already in the cache keep working.
// A Redis is safe for concurrent use.
type Redis struct {
	opts   RedisOptions
	client *redis.Client
	cache  cache
	health health
}

var _ Resolver = (*Redis)(nil)

// NewRedis returns a Redis source. It does not connect until the first
// lookup or Ping.
func NewRedis(opts *RedisOptions) *Redis {
	o := *opts
	setDefault(&o.Addr, "127.0.0.1:6379")
	setDefault(&o.Timeout, 2*time.Second)
	setDefault(&o.CacheTTL, 5*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	quietRedis.Do(func() { redis.SetLogger(discardRedisLog{}) })
	c := redis.NewClient(&redis.Options{
		Addr:            o.Addr,
		DB:              o.DB,
		Username:        o.Username,
		Password:        o.Password,
		DialTimeout:     o.Timeout,
		ReadTimeout:     o.Timeout,
		WriteTimeout:    o.Timeout,
		MaxRetries:      1,
		Protocol:        2,
		DisableIdentity: true,
	})
	return &Redis{opts: o, client: c, cache: cache{ttl: o.CacheTTL},
		health: health{log: o.Logger, what: "redis token source", attrs: []any{"addr", o.Addr}}}
}

// quietRedis silences go-redis's own logger, which writes to standard
// error: Resolve reports an outage once, through the source's Logger.
var quietRedis sync.Once

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Ping checks that the server answers, for a start-time diagnostic.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", r.opts.Addr, err)
	}
	return nil
}

// Close closes the connections to Redis.
func (r *Redis) Close() error { return r.client.Close() }

// Resolve implements Resolver with the request's token.
func (r *Redis) Resolve(ctx context.Context, req Request) (Target, error) {
	if err := CheckToken(req.Token, MaxTokenLen); err != nil {
		return Target{}, err
	}
	now := time.Now()
	if t, ok := r.cache.get(req.Token, now); ok {
		return t, nil
	}
	key := req.Token
	if r.opts.Namespace != "" {
		key = r.opts.Namespace + ":" + req.Token
	}
	lctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	v, err := r.client.Get(lctx, key).Result()
	if err != nil && ctx.Err() != nil {
		// The client went away; that says nothing about Redis.
		return Target{}, fmt.Errorf("redis lookup abandoned: %w", ctx.Err())
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		r.health.failed(err)
		return Target{}, fmt.Errorf("redis %s: %w: %w", r.opts.Addr, err, ErrUnavailable)
	}
	r.health.answered()
	if err != nil {
		return Target{}, fmt.Errorf("token not in redis: %w", ErrNotFound)
	}
	t, err := ParseRedisValue(v)
	if err != nil {
		return Target{}, fmt.Errorf("redis value for token: %w: %w", err, ErrNotFound)
	}
	t.Allow = r.opts.Allow
	r.cache.put(req.Token, t, now)
	return t, nil
}

// ParseRedisValue reads a TokenRedis value: JSON {"host": "host:port"} or
// plain "host:port".
func ParseRedisValue(v string) (Target, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "{") {
		var j struct {
			Host string `json:"host"`
		}
		if err := json.Unmarshal([]byte(v), &j); err != nil {
			return Target{}, fmt.Errorf("value is not JSON {\"host\": \"host:port\"}: %w", err)
		}
		v = strings.TrimSpace(j.Host)
	}
	return parseTokenTarget(v)
}
