// Package podspec builds executor pods the way Spark's executor feature steps
// do (BasicExecutorFeatureStep and the steps after it; ../shared/SPARK.md §7):
// the pod name and hostname, Spark's labels, annotations, the environment the
// executor process expects, requests and limits with Spark's memory overhead,
// custom resources, node selector, service account, image pull settings,
// secrets, local directories, restart policy Never, an owner reference to the
// driver pod, and Spark's merge of an executor pod template.
//
// A Builder is made once per application and request from the application's
// Spark configuration and resource profiles, which it validates up front;
// Build then makes one pod per executor id. Invalid configuration is a
// *sparkconf.Error naming the Spark key, or a *ProfileError naming the
// resource profile field.
//
// # Where sparkpods differs from Spark, and why
//
//   - The pod template: spark.kubernetes.executor.podTemplateFile holds the
//     template's YAML itself, not a path: sparkpods cannot read the driver's
//     files. The merge is Spark's (see Builder.Build).
//   - The pod name prefix: when spark.kubernetes.executor.podNamePrefix is
//     unset, Spark derives it from spark.app.name and a random id. sparkpods
//     derives the id from the namespace and application id instead, so the
//     same application always gets the same names, which is what makes
//     creates idempotent. Leading dashes are dropped and an over-long
//     application name is shortened so the prefix stays a valid name.
//   - The executor ConfigMap: Spark's driver creates it under a random name;
//     executors mount it only when sparkpods.executorConfigMapName names it.
//   - SPARK_USER, the spark-version label and {{SPARK_VERSION}} in the image
//     come from sparkpods.sparkUser and sparkpods.sparkVersion; without them
//     the variable and the label are left out.
//   - spark.authenticate: Spark passes the secret it generated to executors
//     in _SPARK_AUTH_SECRET. sparkpods passes spark.authenticate.secret, and
//     refuses the configuration when neither it nor
//     spark.authenticate.secret.executor.file is set.
//   - Spark's hash-ordered maps (environment, Java options, labels) are
//     emitted in key order, so a configuration always yields the same pod.
//   - Volumes (spark.kubernetes.executor.volumes.*), Hadoop configuration
//     mounts and user feature steps are not supported yet: a configuration
//     that uses volumes is refused rather than silently given a different pod.
//
// Two annotations are part of sparkpods' own contract: ContainerNameAnnotation
// names the Spark executor container and CheckAllContainersAnnotation carries
// spark.kubernetes.executor.checkAllContainers, so that the snapshot service
// can apply each application's settings pod by pod.
package podspec
