package sparkpodsctl

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

func parseIDs(args []string) ([]int64, error) {
	ids := make([]int64, 0, len(args))
	for _, a := range args {
		for f := range strings.SplitSeq(a, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || id <= 0 {
				return nil, usageError{fmt.Errorf("executor id %q: want a positive number", f)}
			}
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// reportAccepted prints what the allocator accepted and fails when it
// accepted none of the ids.
func (o *options) reportAccepted(verb string, asked, accepted []int64) error {
	for _, id := range accepted {
		_, _ = fmt.Fprintf(o.streams.Out, "executor %d %s\n", id, verb)
	}
	var unknown []string
	for _, id := range asked {
		if !slices.Contains(accepted, id) {
			unknown = append(unknown, strconv.FormatInt(id, 10))
		}
	}
	if len(unknown) > 0 {
		_, _ = fmt.Fprintf(o.streams.ErrOut, "warning: the allocator does not know executor(s) %s\n", strings.Join(unknown, ", "))
	}
	if len(accepted) == 0 {
		return fmt.Errorf("no executor %s", verb)
	}
	return nil
}

func newKillCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "kill APP ID...",
		Short: "Kill executors (Spark's killExecutors); the target stays, so the allocator replaces them",
		Example: "  sparkpodsctl kill spark-1234 7 8 9 -n spark\n" +
			"  sparkpodsctl kill spark-1234 7,8,9",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(args[1:])
			if err != nil {
				return err
			}
			c, err := o.conn(o.allocator)
			if err != nil {
				return err
			}
			ctx, cancel := o.call(cmd.Context())
			defer cancel()
			resp, err := sparkpodsv1.NewSchedulerServiceClient(c).KillExecutors(ctx, &sparkpodsv1.KillExecutorsRequest{
				Namespace: o.namespace, AppId: args[0], ExecutorIds: ids,
			})
			if err != nil {
				return err
			}
			if o.output != OutputTable {
				return printMessage(o.streams.Out, o.output, resp)
			}
			return o.reportAccepted("killed", ids, resp.GetAcceptedExecutorIds())
		},
	}
}

func newDecommissionCommand(o *options) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:     "decommission APP ID...",
		Aliases: []string{"decom"},
		Short:   "Decommission executors: label them to drain, delete those still running after the grace period",
		Example: "  sparkpodsctl decommission spark-1234 7 8 --grace 30s -n spark",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(args[1:])
			if err != nil {
				return err
			}
			c, err := o.conn(o.allocator)
			if err != nil {
				return err
			}
			req := &sparkpodsv1.DecommissionExecutorsRequest{Namespace: o.namespace, AppId: args[0], ExecutorIds: ids}
			if grace > 0 {
				req.GracePeriod = durationpb.New(grace)
			}
			ctx, cancel := o.call(cmd.Context())
			defer cancel()
			resp, err := sparkpodsv1.NewSchedulerServiceClient(c).DecommissionExecutors(ctx, req)
			if err != nil {
				return err
			}
			if o.output != OutputTable {
				return printMessage(o.streams.Out, o.output, resp)
			}
			return o.reportAccepted("decommissioning", ids, resp.GetAcceptedExecutorIds())
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 0, "drain time before pods still running are deleted (default: the application's spark.kubernetes.dynamicAllocation.deleteGracePeriod)")
	return cmd
}

func newScaleCommand(o *options) *cobra.Command {
	var (
		profile     int32
		executors   int32
		wait        bool
		waitTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "scale APP --executors N",
		Short: "Set a resource profile's executor target (Spark's requestTotalExecutors), optionally waiting until it runs",
		Example: "  sparkpodsctl scale spark-1234 --executors 50 -n spark\n" +
			"  sparkpodsctl scale spark-1234 --profile 1 --executors 20 --wait",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("executors") || executors < 0 {
				return usageError{fmt.Errorf("--executors N (0 or more) is required")}
			}
			c, err := o.conn(o.allocator)
			if err != nil {
				return err
			}
			client := sparkpodsv1.NewSchedulerServiceClient(c)
			ctx, cancel := o.call(cmd.Context())
			resp, err := client.SetExecutorTargets(ctx, &sparkpodsv1.SetExecutorTargetsRequest{
				Namespace: o.namespace, AppId: args[0],
				Targets: []*sparkpodsv1.ExecutorTarget{{ResourceProfileId: profile, TotalExecutors: executors}},
			})
			cancel()
			if err != nil {
				return err
			}
			if !wait {
				if o.output != OutputTable {
					return printMessage(o.streams.Out, o.output, resp)
				}
				_, _ = fmt.Fprintf(o.streams.Out, "application %s/%s profile %d scaled to %d executors\n", o.namespace, args[0], profile, executors)
				return nil
			}
			return o.waitScaled(cmd, client, args[0], profile, executors, waitTimeout)
		},
	}
	cmd.Flags().Int32Var(&profile, "profile", 0, "resource profile id")
	cmd.Flags().Int32Var(&executors, "executors", 0, "total executors wanted for the profile")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait, with a progress bar, until the profile runs exactly that many executors")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 5*time.Minute, "give up waiting after this long (exit code 1)")
	return cmd
}

func (o *options) waitScaled(cmd *cobra.Command, client sparkpodsv1.SchedulerServiceClient, app string, profile, want int32, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := o.call(cmd.Context())
		resp, err := client.GetApplication(ctx, &sparkpodsv1.GetApplicationRequest{Namespace: o.namespace, AppId: app})
		cancel()
		if err != nil {
			return err
		}
		var p *sparkpodsv1.ProfileAllocation
		for _, q := range resp.GetProfiles() {
			if q.GetResourceProfileId() == profile {
				p = q
			}
		}
		running, pending := p.GetRunning(), p.GetPending()
		_, _ = fmt.Fprintf(o.streams.ErrOut, "\rprofile %d %s running %d/%d, pending %d ", profile, progressBar(running, want, 30), running, want, pending)
		if running == want && p.GetTarget() == want {
			_, _ = fmt.Fprintln(o.streams.ErrOut)
			_, _ = fmt.Fprintf(o.streams.Out, "application %s/%s profile %d runs %d executors\n", o.namespace, app, profile, want)
			return nil
		}
		if time.Now().After(deadline) {
			_, _ = fmt.Fprintln(o.streams.ErrOut)
			reason := p.GetBlockedReason()
			if reason == "" {
				reason = "no reason given by the allocator; see `sparkpodsctl explain " + app + "`"
			}
			return fmt.Errorf("profile %d runs %d of %d executors after %s: %s", profile, running, want, timeout, reason)
		}
		select {
		case <-cmd.Context().Done():
			_, _ = fmt.Fprintln(o.streams.ErrOut)
			return cmd.Context().Err()
		case <-tick.C:
		}
	}
}

// progressBar shows how close running is to the target, from below or above.
func progressBar(running, target int32, width int) string {
	lo, hi := min(running, target), max(running, target)
	filled := width
	if hi > 0 {
		filled = int(lo) * width / int(hi)
	}
	return "[" + strings.Repeat("█", filled) + strings.Repeat("░", width-filled) + "]"
}
