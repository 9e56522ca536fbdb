//! Readable names of AWS product codes (`line_item_product_code`) for invoice lines; a code not
//! in the table (a Marketplace product id, a new service) is shown as it is.

const NAMES: &[(&str, &str)] = &[
    ("AmazonEC2", "Amazon Elastic Compute Cloud (EC2)"),
    ("AmazonS3", "Amazon Simple Storage Service (S3)"),
    (
        "AmazonS3GlacierDeepArchive",
        "Amazon S3 Glacier Deep Archive",
    ),
    ("AmazonGlacier", "Amazon S3 Glacier"),
    ("AmazonRDS", "Amazon Relational Database Service (RDS)"),
    ("AmazonDynamoDB", "Amazon DynamoDB"),
    ("AmazonCloudWatch", "Amazon CloudWatch"),
    ("AWSLambda", "AWS Lambda"),
    ("AWSDataTransfer", "AWS Data Transfer"),
    ("AmazonVPC", "Amazon Virtual Private Cloud (VPC)"),
    ("AmazonCloudFront", "Amazon CloudFront"),
    ("AmazonRoute53", "Amazon Route 53"),
    ("AmazonEKS", "Amazon Elastic Kubernetes Service (EKS)"),
    ("AmazonECS", "Amazon Elastic Container Service (ECS)"),
    ("AmazonECR", "Amazon Elastic Container Registry (ECR)"),
    ("AmazonEFS", "Amazon Elastic File System (EFS)"),
    ("AmazonFSx", "Amazon FSx"),
    ("AmazonElastiCache", "Amazon ElastiCache"),
    ("AmazonRedshift", "Amazon Redshift"),
    ("AmazonES", "Amazon OpenSearch Service"),
    ("AmazonKinesis", "Amazon Kinesis"),
    ("AmazonKinesisFirehose", "Amazon Data Firehose"),
    (
        "AmazonMSK",
        "Amazon Managed Streaming for Apache Kafka (MSK)",
    ),
    ("AmazonSNS", "Amazon Simple Notification Service (SNS)"),
    ("AWSQueueService", "Amazon Simple Queue Service (SQS)"),
    ("AmazonSES", "Amazon Simple Email Service (SES)"),
    ("AmazonApiGateway", "Amazon API Gateway"),
    ("AmazonAthena", "Amazon Athena"),
    ("AWSGlue", "AWS Glue"),
    ("ElasticMapReduce", "Amazon EMR"),
    ("AmazonSageMaker", "Amazon SageMaker"),
    ("AmazonBedrock", "Amazon Bedrock"),
    ("AmazonLightsail", "Amazon Lightsail"),
    ("AmazonWorkSpaces", "Amazon WorkSpaces"),
    ("AmazonGuardDuty", "Amazon GuardDuty"),
    ("AmazonInspectorV2", "Amazon Inspector"),
    ("AmazonMacie", "Amazon Macie"),
    ("AmazonCognito", "Amazon Cognito"),
    ("AmazonDocDB", "Amazon DocumentDB"),
    ("AmazonNeptune", "Amazon Neptune"),
    ("AmazonTimestream", "Amazon Timestream"),
    ("AmazonStates", "AWS Step Functions"),
    ("AmazonQuickSight", "Amazon QuickSight"),
    ("AWSCloudTrail", "AWS CloudTrail"),
    ("AWSConfig", "AWS Config"),
    ("AWSCostExplorer", "AWS Cost Explorer"),
    ("AWSSecretsManager", "AWS Secrets Manager"),
    ("awskms", "AWS Key Management Service (KMS)"),
    ("AWSELB", "Elastic Load Balancing"),
    ("AWSBackup", "AWS Backup"),
    ("AWSShield", "AWS Shield"),
    ("awswaf", "AWS WAF"),
    ("AWSSecurityHub", "AWS Security Hub"),
    ("AWSSystemsManager", "AWS Systems Manager"),
    ("AWSDirectConnect", "AWS Direct Connect"),
    ("AWSTransfer", "AWS Transfer Family"),
    ("AWSEvents", "Amazon EventBridge"),
    ("AWSCodeArtifact", "AWS CodeArtifact"),
    ("CodeBuild", "AWS CodeBuild"),
    ("AWSCodePipeline", "AWS CodePipeline"),
    ("AWSSupportBusiness", "AWS Support (Business)"),
    ("AWSSupportEnterprise", "AWS Support (Enterprise)"),
    (
        "AWSSupportEnterpriseOnRamp",
        "AWS Support (Enterprise On-Ramp)",
    ),
    ("AWSDeveloperSupport", "AWS Support (Developer)"),
    ("OCBPremiumSupport", "AWS Premium Support"),
    ("ComputeSavingsPlans", "Compute Savings Plans"),
    (
        "MachineLearningSavingsPlans",
        "Machine Learning Savings Plans",
    ),
    ("CustomLineItem", "Services"),
];

/// The readable name of `product_code`, or the code itself.
pub fn name(product_code: &str) -> &str {
    NAMES
        .iter()
        .find(|(code, _)| *code == product_code)
        .map_or(product_code, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_read_well_and_unknown_ones_stay() {
        assert_eq!(name("AmazonEC2"), "Amazon Elastic Compute Cloud (EC2)");
        assert_eq!(
            name("9s2k4hd7rw3qz0mxv5b8ny1tj"),
            "9s2k4hd7rw3qz0mxv5b8ny1tj"
        );
    }
}
