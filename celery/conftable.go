package celery

import "github.com/forumads/forumads/celery/internal/confrender"

// ConfTable is the reply to `celery inspect conf`: the settings by their Celery names, only
// those that differ from the defaults unless withDefaults. Passwords in URLs are replaced with
// "**" (as Celery's maskurl does) and settings named like secrets (password, token, secret...)
// with "********".
func ConfTable(cfg Config, withDefaults bool) map[string]any {
	return confrender.Table(cfg, Config{}.WithDefaults(), confrender.Options{
		WithDefaults: withDefaults,
		Named:        map[string]string{"TaskRoutes": "task_routes"},
	})
}
