package sparkpodsctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sparkpods/sparkpods/clients/snapshotwatcher"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

func newWatchCommand(o *options) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "watch [APP]",
		Short: "Watch an application's executors live, like kubectl get -w (snapshot stream)",
		Long: `watch follows the snapshot service's WatchSnapshots stream and prints a line
each time an application's executors change: counts by state in table
output, the full snapshot in json (one object a line) or yaml (documents).
Without APP it watches every application in the namespace (-A: everywhere).
It resumes across disconnects and runs until interrupted.`,
		Example: "  sparkpodsctl watch spark-1234 -n spark\n  sparkpodsctl watch -A",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.conn(o.snapshot)
			if err != nil {
				return err
			}
			opt := snapshotwatcher.WithNamespace(o.namespace)
			switch {
			case len(args) == 1:
				opt = snapshotwatcher.WithApplication(o.namespace, args[0])
			case all:
				opt = snapshotwatcher.WithNamespace("")
			}
			w, err := snapshotwatcher.New(c, opt, snapshotwatcher.WithBatchInterval(200*time.Millisecond))
			if err != nil {
				return usageError{err}
			}
			if o.output == OutputTable {
				_, _ = fmt.Fprintf(o.streams.Out, "%-8s  %-20s %-28s %8s %7s %7s %9s %6s %7s\n",
					"TIME", "NAMESPACE", "APP", "REVISION", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "DELETED")
			}
			err = w.Run(cmd.Context(), func(_ context.Context, u snapshotwatcher.Update) error {
				for _, s := range u.Snapshots {
					if err := o.printSnapshot(s); err != nil {
						return err
					}
				}
				for _, k := range u.Removed {
					if o.output == OutputTable {
						_, _ = fmt.Fprintf(o.streams.Out, "%-8s  %-20s %-28s (no executor pods left)\n", o.now().Format(time.TimeOnly), k.Namespace, k.AppID)
					}
				}
				return nil
			})
			if cmd.Context().Err() != nil {
				return nil // interrupted, or the caller's deadline
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "watch applications in every namespace")
	return cmd
}

func (o *options) printSnapshot(s *sparkpodsv1.ExecutorSnapshot) error {
	switch o.output {
	case OutputJSON:
		return printMessage(o.streams.Out, "json-line", s)
	case OutputYAML:
		_, _ = fmt.Fprintln(o.streams.Out, "---")
		return printMessage(o.streams.Out, OutputYAML, s)
	}
	c := &sparkpodsv1.ExecutorCounts{}
	for _, e := range s.GetExecutors() {
		switch e.GetState() {
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_PENDING:
			c.Pending++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_RUNNING:
			c.Running++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_SUCCEEDED:
			c.Succeeded++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_FAILED:
			c.Failed++
		case sparkpodsv1.ExecutorState_EXECUTOR_STATE_DELETED:
			c.Deleted++
		}
	}
	_, err := fmt.Fprintf(o.streams.Out, "%-8s  %-20s %-28s %8d %7d %7d %9d %6d %7d\n", o.now().Format(time.TimeOnly),
		s.GetNamespace(), s.GetAppId(), s.GetRevision(), c.Pending, c.Running, c.Succeeded, c.Failed, c.Deleted)
	return err
}

func newEventsCommand(o *options) *cobra.Command {
	var (
		follow bool
		after  int64
	)
	cmd := &cobra.Command{
		Use:   "events APP",
		Short: "Tail an application's executor events with Spark's loss reasons (lifecycle service)",
		Long: `events lists an application's recorded executor events; with --follow it
keeps streaming new ones (WatchExecutorEvents), resuming after the last one
printed if the stream breaks. It never acknowledges events: acknowledging
is the scheduler's job.`,
		Example: "  sparkpodsctl events spark-1234 -n spark -f",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !follow {
				return o.listEvents(cmd.Context(), args[0], after)
			}
			c, err := o.conn(o.lifecycle)
			if err != nil {
				return err
			}
			client := sparkpodsv1.NewLifecycleServiceClient(c)
			t := eventHeader(o.streams.Out)
			if o.output == OutputTable {
				if err := t.flush(); err != nil {
					return err
				}
			}
			for {
				err := o.followEvents(cmd.Context(), client, args[0], &after, t)
				// A watch has no --timeout, so DeadlineExceeded can only be the
				// caller's own deadline, which the server may report a moment
				// before the local context notices it.
				if cmd.Context().Err() != nil || status.Code(err) == codes.DeadlineExceeded {
					return nil // interrupted
				}
				if err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new events")
	cmd.Flags().Int64Var(&after, "after", 0, "only events with a sequence greater than this")
	return cmd
}

// followEvents streams events until the stream ends; a stream that ends
// after delivering anything is resumed by the caller.
func (o *options) followEvents(ctx context.Context, client sparkpodsv1.LifecycleServiceClient, app string, after *int64, t *table) error {
	stream, err := client.WatchExecutorEvents(ctx, &sparkpodsv1.WatchExecutorEventsRequest{
		Namespace: o.namespace, AppId: app, AfterSequence: *after, HeartbeatInterval: durationpb.New(5 * time.Second),
	})
	if err != nil {
		return err
	}
	progressed := false
	for {
		msg, err := stream.Recv()
		if err != nil {
			if progressed {
				return nil
			}
			return err
		}
		progressed = true
		ev := msg.GetEvent()
		if ev == nil || ev.GetSequence() <= *after {
			continue
		}
		*after = ev.GetSequence()
		if o.output != OutputTable {
			if o.output == OutputYAML {
				_, _ = fmt.Fprintln(o.streams.Out, "---")
				err = printMessage(o.streams.Out, OutputYAML, ev)
			} else {
				err = printMessage(o.streams.Out, "json-line", ev)
			}
			if err != nil {
				return err
			}
			continue
		}
		eventRow(t, ev, o.now())
		if err := t.flush(); err != nil {
			return err
		}
	}
}
