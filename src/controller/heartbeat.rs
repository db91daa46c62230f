//! Liveness from progress: every backend call that returns (successfully or not) counts as the loop moving, so a
//! pass that takes many minutes over a large fleet stays alive while one that hangs does not.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::Shared;
use crate::backend::{
    Autoscaling, BackendError, Described, Ecs, ImageCommand, ImageInfo, ImageSelector, Images, LoadBalancer,
    ScalableTarget, ScalingPolicy, SecretInfo, Secrets, ServiceState, ServiceUpdate, Tags, TargetGroup, TargetGroups,
    TaskDefinition, TaskInfo, TaskPage, TdStatus,
};
use crate::render::autoscaling::{ScalableTargetInput, ScalingPolicyInput};
use crate::render::ecs::{ServiceInput, TaskDefinitionInput};

/// A port that records progress on [`Shared`] whenever one of its calls returns.
pub struct Beating<T: ?Sized> {
    pub inner: Arc<T>,
    pub shared: Arc<Shared>,
}

impl<T: ?Sized> Beating<T> {
    fn beat<R>(&self, r: R) -> R {
        self.shared.beat();
        r
    }
}

#[async_trait]
impl Ecs for Beating<dyn Ecs> {
    async fn describe_services(&self, cluster: &str, names: &[String]) -> Result<Described, BackendError> {
        self.beat(self.inner.describe_services(cluster, names).await)
    }
    async fn list_services(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        self.beat(self.inner.list_services(cluster).await)
    }
    async fn list_clusters(&self) -> Result<Vec<String>, BackendError> {
        self.beat(self.inner.list_clusters().await)
    }
    async fn register_task_definition(&self, input: &TaskDefinitionInput) -> Result<TaskDefinition, BackendError> {
        self.beat(self.inner.register_task_definition(input).await)
    }
    async fn describe_task_definition(&self, id: &str) -> Result<TaskDefinition, BackendError> {
        self.beat(self.inner.describe_task_definition(id).await)
    }
    async fn list_task_definitions(&self, family: &str, status: TdStatus) -> Result<Vec<String>, BackendError> {
        self.beat(self.inner.list_task_definitions(family, status).await)
    }
    async fn deregister_task_definition(&self, arn: &str) -> Result<(), BackendError> {
        self.beat(self.inner.deregister_task_definition(arn).await)
    }
    async fn create_service(
        &self,
        input: &ServiceInput,
        client_token: Option<&str>,
    ) -> Result<ServiceState, BackendError> {
        self.beat(self.inner.create_service(input, client_token).await)
    }
    async fn update_service(&self, update: &ServiceUpdate) -> Result<ServiceState, BackendError> {
        self.beat(self.inner.update_service(update).await)
    }
    async fn delete_service(&self, cluster: &str, name: &str) -> Result<(), BackendError> {
        self.beat(self.inner.delete_service(cluster, name).await)
    }
    async fn tag_resource(&self, arn: &str, tags: &Tags) -> Result<(), BackendError> {
        self.beat(self.inner.tag_resource(arn, tags).await)
    }
    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), BackendError> {
        self.beat(self.inner.untag_resource(arn, keys).await)
    }
    async fn stopped_task_reasons(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Vec<String>, BackendError> {
        self.beat(self.inner.stopped_task_reasons(cluster, service, task_definition).await)
    }
    async fn list_tasks(&self, cluster: &str, service: &str, token: Option<&str>) -> Result<TaskPage, BackendError> {
        self.beat(self.inner.list_tasks(cluster, service, token).await)
    }
    async fn describe_tasks(&self, cluster: &str, arns: &[String]) -> Result<Vec<TaskInfo>, BackendError> {
        self.beat(self.inner.describe_tasks(cluster, arns).await)
    }
}

#[async_trait]
impl Images for Beating<dyn Images> {
    async fn lookup(
        &self,
        repository: &str,
        selectors: &[ImageSelector],
    ) -> Result<BTreeMap<ImageSelector, ImageInfo>, BackendError> {
        self.beat(self.inner.lookup(repository, selectors).await)
    }

    async fn image_command(&self, repo: &str, digest: &str, platform: &str) -> Result<ImageCommand, BackendError> {
        self.beat(self.inner.image_command(repo, digest, platform).await)
    }
}

#[async_trait]
impl Secrets for Beating<dyn Secrets> {
    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, SecretInfo>, BackendError> {
        self.beat(self.inner.resolve(ids).await)
    }
}

#[async_trait]
impl TargetGroups for Beating<dyn TargetGroups> {
    async fn target_groups(&self, ids: &[String]) -> Result<Vec<TargetGroup>, BackendError> {
        self.beat(self.inner.target_groups(ids).await)
    }
    async fn load_balancers(&self, arns: &[String]) -> Result<Vec<LoadBalancer>, BackendError> {
        self.beat(self.inner.load_balancers(arns).await)
    }
}

#[async_trait]
impl Autoscaling for Beating<dyn Autoscaling> {
    async fn scalable_targets(&self, resource_ids: &[String]) -> Result<Vec<ScalableTarget>, BackendError> {
        self.beat(self.inner.scalable_targets(resource_ids).await)
    }
    async fn scaling_policies(&self, resource_id: &str) -> Result<Vec<ScalingPolicy>, BackendError> {
        self.beat(self.inner.scaling_policies(resource_id).await)
    }
    async fn register_scalable_target(&self, input: &ScalableTargetInput) -> Result<(), BackendError> {
        self.beat(self.inner.register_scalable_target(input).await)
    }
    async fn put_scaling_policy(&self, input: &ScalingPolicyInput) -> Result<(), BackendError> {
        self.beat(self.inner.put_scaling_policy(input).await)
    }
    async fn delete_scaling_policy(&self, resource_id: &str, policy_name: &str) -> Result<(), BackendError> {
        self.beat(self.inner.delete_scaling_policy(resource_id, policy_name).await)
    }
    async fn deregister_scalable_target(&self, resource_id: &str) -> Result<(), BackendError> {
        self.beat(self.inner.deregister_scalable_target(resource_id).await)
    }
}
