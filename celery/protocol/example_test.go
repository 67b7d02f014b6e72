package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/forumads/forumads/celery/protocol"
)

func ExampleDecode() {
	env := protocol.Envelope{
		Body:        []byte(`[[2, 3], {"big": 9007199254740993}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`),
		ContentType: "application/json",
		Headers:     map[string]any{"task": "tasks.add", "id": "7f0c", "eta": "2030-01-02T03:04:05.5+02:00"},
	}
	m, err := protocol.Decode(env, protocol.Accept{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Task, m.ID, m.Args, string(m.Kwargs["big"]), m.ETA.UTC())

	env.ContentType = protocol.ContentTypePickle
	_, err = protocol.Decode(env, protocol.Accept{})
	fmt.Println(errors.Is(err, protocol.ErrContentDisallowed), err)
	// Output:
	// tasks.add 7f0c [[50] [51]] 9007199254740993 2030-01-02 01:04:05.5 +0000 UTC
	// true protocol: content disallowed: content type "application/x-python-serialize" is not accepted (task tasks.add id 7f0c)
}

func ExampleEncodeV2() {
	m := &protocol.TaskMessage{
		ID:     "7f0c",
		Task:   "tasks.echo",
		Args:   []json.RawMessage{json.RawMessage(`"Zoë"`), json.RawMessage(`1.50`)},
		Origin: "gen1@host",
	}
	env, err := protocol.EncodeV2(m, protocol.EncodeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(env.Body))
	fmt.Println(env.Headers["argsrepr"], env.Headers["root_id"], env.ContentType, env.DeliveryMode)
	// Output:
	// [["Zo\u00eb", 1.5], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]
	// ('Zoë', 1.5) 7f0c application/json 2
}
