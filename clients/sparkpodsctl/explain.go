package sparkpodsctl

import (
	"fmt"

	"github.com/spf13/cobra"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

func newExplainCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "explain APP",
		Short: "Show why the allocator is or is not creating pods: targets, outstanding and pending per profile",
		Long: `explain shows the allocator's view of an application per resource profile:
the target, the executors running and pending, Spark's outstanding pods
(pending plus newly created, not yet seen in a snapshot) and the reason the
allocator is not creating pods right now, if any.`,
		Example: "  sparkpodsctl explain spark-1234 -n spark",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.conn(o.allocator)
			if err != nil {
				return err
			}
			ctx, cancel := o.call(cmd.Context())
			defer cancel()
			resp, err := sparkpodsv1.NewSchedulerServiceClient(c).ListExecutors(ctx, &sparkpodsv1.ListExecutorsRequest{Namespace: o.namespace, AppId: args[0]})
			if err != nil {
				return err
			}
			if o.output != OutputTable {
				return printMessage(o.streams.Out, o.output, resp)
			}
			if err := printProfiles(o.streams.Out, resp.GetProfiles()); err != nil {
				return err
			}
			c2 := resp.GetCounts()
			_, _ = fmt.Fprintf(o.streams.Out, "\nsnapshot revision %d: %d pending, %d running, %d failed, %d deleted; %d registered with the scheduler; %d pods deleted by the allocator; %d failed pod creations\n",
				resp.GetSnapshotRevision(), c2.GetPending(), c2.GetRunning(), c2.GetFailed(), c2.GetDeleted(),
				len(resp.GetRegisteredExecutors()), len(resp.GetDeletedExecutorIds()), resp.GetFailedPodCreations())
			return nil
		},
	}
}
