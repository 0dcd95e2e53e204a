//! The gRPC service: the edge agent API's five calls on the [`Registry`].

use std::sync::Arc;

use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use crate::proto::edge_agent_server::EdgeAgent;
use crate::proto::{
    DescribeModelRequest, DescribeModelResponse, DetectAnomaliesRequest, DetectAnomaliesResponse, ListModelsRequest,
    ListModelsResponse, ModelDescription, ModelMetadata, StartModelRequest, StartModelResponse, StopModelRequest,
    StopModelResponse,
};
use crate::registry::Registry;
use crate::runner::Job;

/// The edge agent API on a registry of models.
#[derive(Clone)]
pub struct Agent {
    registry: Arc<Registry>,
}

impl Agent {
    /// The service of `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Agent { registry }
    }

    /// A `DetectAnomalies` call without the transport (the fuzz tests drive this).
    pub async fn detect(&self, req: DetectAnomaliesRequest) -> Result<DetectAnomaliesResponse, Status> {
        let name = component_name(&req.model_component)?;
        let runner = self.registry.runner(name)?;
        let request = crate::request::check(req.bitmap, req.anomaly_mask_params)?;
        let (reply, answer) = oneshot::channel();
        runner.submit(Job { request, reply })?;
        let result = answer.await.map_err(|_| Status::aborted("the model stopped before the call ran"))??;
        Ok(DetectAnomaliesResponse { detect_anomaly_result: Some(result) })
    }
}

fn component_name(name: &str) -> Result<&str, Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument("model_component is empty"));
    }
    Ok(name)
}

#[tonic::async_trait]
impl EdgeAgent for Agent {
    async fn detect_anomalies(
        &self,
        request: Request<DetectAnomaliesRequest>,
    ) -> Result<Response<DetectAnomaliesResponse>, Status> {
        self.detect(request.into_inner()).await.map(Response::new)
    }

    async fn start_model(&self, request: Request<StartModelRequest>) -> Result<Response<StartModelResponse>, Status> {
        let name = component_name(&request.get_ref().model_component)?;
        let status = self.registry.start(name)?;
        Ok(Response::new(StartModelResponse { status: status.into() }))
    }

    async fn stop_model(&self, request: Request<StopModelRequest>) -> Result<Response<StopModelResponse>, Status> {
        let name = component_name(&request.get_ref().model_component)?;
        let status = self.registry.stop(name)?;
        Ok(Response::new(StopModelResponse { status: status.into() }))
    }

    async fn list_models(&self, _: Request<ListModelsRequest>) -> Result<Response<ListModelsResponse>, Status> {
        let models = self
            .registry
            .list()
            .into_iter()
            .map(|d| ModelMetadata {
                model_component: d.name,
                lookout_vision_model_arn: d.arn,
                status: d.status.into(),
                status_message: d.message,
            })
            .collect();
        Ok(Response::new(ListModelsResponse { models }))
    }

    async fn describe_model(
        &self,
        request: Request<DescribeModelRequest>,
    ) -> Result<Response<DescribeModelResponse>, Status> {
        let name = component_name(&request.get_ref().model_component)?;
        let d = self.registry.describe(name)?;
        Ok(Response::new(DescribeModelResponse {
            model_description: Some(ModelDescription {
                model_component: d.name,
                lookout_vision_model_arn: d.arn,
                status: d.status.into(),
                status_message: d.message,
            }),
        }))
    }
}
