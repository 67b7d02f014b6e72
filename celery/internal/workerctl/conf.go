// This file holds the conf inspect reply; the table is the root's ConfTable (Options.Conf).

package workerctl

import (
	"context"
	"encoding/json"
)

func (c *controller) conf(_ context.Context, args json.RawMessage) (any, error) {
	withDefaults, err := decodeConfArgs(args)
	if err != nil {
		return nil, err
	}
	return c.o.Conf(withDefaults), nil
}
