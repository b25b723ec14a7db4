package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// TestEngine_WatchFailuresReadsExitsAndUnhealthyTurnsOfTheProject: from
// the event stream, an exit and a turn to unhealthy are failures; a
// healthy turn and a one-off's exit are not; a broken stream is an error.
func TestEngine_WatchFailuresReadsExitsAndUnhealthyTurnsOfTheProject(t *testing.T) {
	messages, errs := make(chan events.Message), make(chan error, 1)
	var asked client.EventsListOptions
	fake := &engineFake{t: t, events: func(options client.EventsListOptions) client.EventsResult {
		asked = options
		return client.EventsResult{Messages: messages, Err: errs}
	}}
	since := time.Unix(1700000000, 500000000)
	failures, watchErrs := (&Engine{API: fake}).WatchFailures(context.Background(), "shop", since)
	actor := func(name, oneOff string, extra ...string) events.Actor {
		attributes := map[string]string{"name": name, LabelService: "web", LabelRelease: "r2", LabelOneOff: oneOff}
		for i := 0; i+1 < len(extra); i += 2 {
			attributes[extra[i]] = extra[i+1]
		}
		return events.Actor{ID: name, Attributes: attributes}
	}
	go func() {
		messages <- events.Message{Type: events.ContainerEventType, Action: "health_status: healthy", Actor: actor("shop-web-3", "False")}
		messages <- events.Message{Type: events.ContainerEventType, Action: events.ActionDie, Actor: actor("shop-migrate-run-r2", "True", "exitCode", "0")}
		messages <- events.Message{Type: events.ContainerEventType, Action: events.ActionDie, Actor: actor("shop-web-3", "False", "exitCode", "1")}
		messages <- events.Message{Type: events.ContainerEventType, Action: "health_status: unhealthy", Actor: actor("shop-web-4", "False")}
		errs <- context.DeadlineExceeded
	}()
	var got []string
	for failure := range failures {
		got = append(got, failure.Container+" "+failure.Reason+" "+failure.Release)
	}
	want := "shop-web-3 exited with code 1 r2\nshop-web-4 turned unhealthy r2"
	if strings.Join(got, "\n") != want {
		t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	if err := <-watchErrs; err == nil || !strings.Contains(err.Error(), "event stream of project shop") {
		t.Errorf("a broken stream: %v, want an error naming the project", err)
	}
	if asked.Since != "1700000000.500000000" || !asked.Filters["label"][LabelProject+"=shop"] || !asked.Filters["event"]["die"] {
		t.Errorf("events asked with %+v, want since, the project label and die", asked)
	}
}
