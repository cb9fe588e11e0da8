package sparkpodsctl

import (
	"context"

	"github.com/spf13/cobra"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

func newGetCommand(o *options) *cobra.Command {
	get := &cobra.Command{
		Use:   "get",
		Short: "Display applications, an application's executors or its executor events",
	}
	var all bool
	apps := &cobra.Command{
		Use:     "applications",
		Aliases: []string{"apps", "app", "application"},
		Short:   "List the applications that have executor pods (snapshot service)",
		Example: "  sparkpodsctl get apps -A\n  sparkpodsctl get apps -n spark -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.conn(o.snapshot)
			if err != nil {
				return err
			}
			ns := o.namespace
			if all {
				ns = ""
			}
			client := sparkpodsv1.NewSnapshotServiceClient(c)
			resp := &sparkpodsv1.ListApplicationsResponse{}
			for token := ""; ; {
				ctx, cancel := o.call(cmd.Context())
				page, err := client.ListApplications(ctx, &sparkpodsv1.ListApplicationsRequest{Namespace: ns, PageToken: token})
				cancel()
				if err != nil {
					return err
				}
				resp.Applications = append(resp.Applications, page.GetApplications()...)
				resp.Epoch = page.GetEpoch()
				if token = page.GetNextPageToken(); token == "" {
					break
				}
			}
			if o.output != OutputTable {
				return printMessage(o.streams.Out, o.output, resp)
			}
			if len(resp.GetApplications()) == 0 {
				noneFound(o, "applications")
				return nil
			}
			return printApplications(o.streams.Out, resp.GetApplications())
		},
	}
	apps.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list applications in every namespace")

	executors := &cobra.Command{
		Use:     "executors APP",
		Aliases: []string{"executor", "exec", "execs"},
		Short:   "List an application's executors: state, profile, pod, node, exit code (snapshot service)",
		Example: "  sparkpodsctl get executors spark-1234 -n spark",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.conn(o.snapshot)
			if err != nil {
				return err
			}
			ctx, cancel := o.call(cmd.Context())
			defer cancel()
			resp, err := sparkpodsv1.NewSnapshotServiceClient(c).GetSnapshot(ctx, &sparkpodsv1.GetSnapshotRequest{Namespace: o.namespace, AppId: args[0]})
			if err != nil {
				return err
			}
			if o.output != OutputTable {
				return printMessage(o.streams.Out, o.output, resp)
			}
			if len(resp.GetSnapshot().GetExecutors()) == 0 {
				noneFound(o, "executors of "+args[0])
				return nil
			}
			return printExecutors(o.streams.Out, resp.GetSnapshot().GetExecutors(), o.now())
		},
	}

	var after int64
	events := &cobra.Command{
		Use:     "events APP",
		Aliases: []string{"event", "ev"},
		Short:   "List an application's recorded executor events with Spark's loss reasons (lifecycle service)",
		Example: "  sparkpodsctl get events spark-1234 -n spark\n  sparkpodsctl get events spark-1234 --after 40 -o yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.listEvents(cmd.Context(), args[0], after)
		},
	}
	events.Flags().Int64Var(&after, "after", 0, "only events with a sequence greater than this")

	get.AddCommand(apps, executors, events)
	return get
}

// listEvents prints every recorded event after a sequence, page by page.
func (o *options) listEvents(ctx context.Context, app string, after int64) error {
	c, err := o.conn(o.lifecycle)
	if err != nil {
		return err
	}
	client := sparkpodsv1.NewLifecycleServiceClient(c)
	resp := &sparkpodsv1.ListExecutorEventsResponse{}
	for seq := after; ; {
		callCtx, cancel := o.call(ctx)
		page, err := client.ListExecutorEvents(callCtx, &sparkpodsv1.ListExecutorEventsRequest{
			Namespace: o.namespace, AppId: app, AfterSequence: seq, PageSize: 1000,
		})
		cancel()
		if err != nil {
			return err
		}
		resp.Events = append(resp.Events, page.GetEvents()...)
		resp.LastSequence = page.GetLastSequence()
		if len(page.GetEvents()) == 0 {
			break
		}
		if seq = page.GetEvents()[len(page.GetEvents())-1].GetSequence(); seq >= page.GetLastSequence() {
			break
		}
	}
	if o.output != OutputTable {
		return printMessage(o.streams.Out, o.output, resp)
	}
	if len(resp.GetEvents()) == 0 {
		noneFound(o, "executor events of "+app)
		return nil
	}
	return printEvents(o.streams.Out, resp.GetEvents(), o.now())
}
