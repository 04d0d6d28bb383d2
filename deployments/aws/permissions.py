"""The IAM actions deploying stack.yaml takes, per CloudFormation resource type: one place.

deployer-policy.json is generated from this table and the template's resource types
(`python -m deployments.aws.permissions > deployments/aws/deployer-policy.json`); a test checks
that the file is current and that every resource type of the template is covered.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

# What CloudFormation calls on the deployer's behalf to create, update, tag and delete each type.
RESOURCE_ACTIONS: dict[str, tuple[str, ...]] = {
    "AWS::ECR::Repository": (
        "ecr:CreateRepository",
        "ecr:DeleteRepository",
        "ecr:DescribeRepositories",
        "ecr:PutLifecyclePolicy",
        "ecr:GetLifecyclePolicy",
        "ecr:DeleteLifecyclePolicy",
        "ecr:PutImageScanningConfiguration",
        "ecr:PutImageTagMutability",
        "ecr:ListImages",
        "ecr:BatchDeleteImage",
        "ecr:TagResource",
        "ecr:UntagResource",
        "ecr:ListTagsForResource",
    ),
    "AWS::ECS::Cluster": (
        "ecs:CreateCluster",
        "ecs:DeleteCluster",
        "ecs:DescribeClusters",
        "ecs:UpdateCluster",
        "ecs:UpdateClusterSettings",
        "ecs:PutClusterCapacityProviders",
        "ecs:TagResource",
        "ecs:UntagResource",
        "ecs:ListTagsForResource",
        "iam:CreateServiceLinkedRole",
    ),
    "AWS::ECS::TaskDefinition": (
        "ecs:RegisterTaskDefinition",
        "ecs:DeregisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
        "ecs:TagResource",
        "iam:PassRole",
    ),
    "AWS::ECS::Service": (
        "ecs:CreateService",
        "ecs:UpdateService",
        "ecs:DeleteService",
        "ecs:DescribeServices",
        "ecs:TagResource",
    ),
    "AWS::EC2::SecurityGroup": (
        "ec2:CreateSecurityGroup",
        "ec2:DeleteSecurityGroup",
        "ec2:DescribeSecurityGroups",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:CreateTags",
    ),
    "AWS::Logs::LogGroup": (
        "logs:CreateLogGroup",
        "logs:DeleteLogGroup",
        "logs:DescribeLogGroups",
        "logs:PutRetentionPolicy",
        "logs:DeleteRetentionPolicy",
        "logs:TagResource",
        "logs:UntagResource",
        "logs:ListTagsForResource",
    ),
    "AWS::IAM::Role": (
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:GetRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:PutRolePolicy",
        "iam:GetRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:TagRole",
        "iam:UntagRole",
    ),
    "AWS::SecretsManager::Secret": (
        "secretsmanager:CreateSecret",
        "secretsmanager:DeleteSecret",
        "secretsmanager:DescribeSecret",
        "secretsmanager:UpdateSecret",
        "secretsmanager:TagResource",
        "secretsmanager:UntagResource",
    ),
    "AWS::SQS::Queue": (
        "sqs:CreateQueue",
        "sqs:DeleteQueue",
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
        "sqs:SetQueueAttributes",
        "sqs:TagQueue",
        "sqs:UntagQueue",
        "sqs:ListQueueTags",
    ),
    "AWS::SQS::QueuePolicy": ("sqs:SetQueueAttributes", "sqs:GetQueueAttributes"),
    "AWS::Events::Rule": (
        "events:PutRule",
        "events:DeleteRule",
        "events:DescribeRule",
        "events:PutTargets",
        "events:RemoveTargets",
        "events:ListTargetsByRule",
        "events:TagResource",
        "events:UntagResource",
    ),
    "AWS::Lambda::Function": (
        "lambda:CreateFunction",
        "lambda:DeleteFunction",
        "lambda:GetFunction",
        "lambda:GetFunctionConfiguration",
        "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration",
        "lambda:TagResource",
        "lambda:UntagResource",
        "lambda:ListTags",
        "iam:PassRole",
    ),
    "AWS::Lambda::Url": (
        "lambda:CreateFunctionUrlConfig",
        "lambda:GetFunctionUrlConfig",
        "lambda:UpdateFunctionUrlConfig",
        "lambda:DeleteFunctionUrlConfig",
    ),
    "AWS::Lambda::Permission": (
        "lambda:AddPermission",
        "lambda:RemovePermission",
        "lambda:GetPolicy",
    ),
}

# Beyond the resources: driving the stack, finding the default VPC, storing the Numerai keys in
# the stack's secret, and pushing the image (prefect-ecs.yaml's push step).
OPERATOR_ACTIONS: tuple[str, ...] = (
    "cloudformation:CreateStack",
    "cloudformation:UpdateStack",
    "cloudformation:DeleteStack",
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackEvents",
    "cloudformation:DescribeStackResources",
    "cloudformation:GetTemplate",
    "cloudformation:ValidateTemplate",
    "cloudformation:GetTemplateSummary",
    "ec2:DescribeVpcs",
    "ec2:DescribeSubnets",
    "secretsmanager:PutSecretValue",
    "ecr:GetAuthorizationToken",
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
)

# Actions IAM does not scope to a resource ARN (the service authorization reference says "*").
UNSCOPED_ACTIONS = frozenset(
    {
        "cloudformation:ValidateTemplate",
        "cloudformation:GetTemplateSummary",
        "ecr:GetAuthorizationToken",
        "ecs:RegisterTaskDefinition",
        "ecs:DeregisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
        "logs:DescribeLogGroups",
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:CreateSecurityGroup",
        "ec2:DeleteSecurityGroup",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:CreateTags",
    }
)


def resource_arns(service: str, prefix: str) -> list[str]:
    """ARNs of what a stack named PREFIX... creates in one service (see stack.yaml's names)."""
    p = prefix
    return {
        "cloudformation": [f"arn:aws:cloudformation:*:*:stack/{p}*/*"],
        "ecr": [f"arn:aws:ecr:*:*:repository/{p}*"],
        "ecs": [
            f"arn:aws:ecs:*:*:cluster/{p}*",
            f"arn:aws:ecs:*:*:service/{p}*/*",
            f"arn:aws:ecs:*:*:task-definition/{p}*:*",
        ],
        "logs": [
            f"arn:aws:logs:*:*:log-group:/numerai-prefect/{p}*",
            f"arn:aws:logs:*:*:log-group:/aws/lambda/{p}*",
        ],
        "iam": [f"arn:aws:iam::*:role/{p}*"],
        "secretsmanager": [f"arn:aws:secretsmanager:*:*:secret:{p}/*"],
        "sqs": [f"arn:aws:sqs:*:*:{p}*"],
        "events": [f"arn:aws:events:*:*:rule/{p}*"],
        "lambda": [f"arn:aws:lambda:*:*:function:{p}*"],
    }[service]


def required_actions(resource_types: Iterable[str]) -> set[str]:
    """Every action deploying these resource types and operating the stack takes."""
    types = set(resource_types)
    unknown = types - set(RESOURCE_ACTIONS)
    if unknown:
        raise KeyError(f"no IAM actions known for resource types {sorted(unknown)}")
    actions = set(OPERATOR_ACTIONS)
    for resource_type in types:
        actions.update(RESOURCE_ACTIONS[resource_type])
    return actions


def deployer_policy(
    resource_types: Iterable[str], prefix: str = "numerai-prefect"
) -> dict[str, Any]:
    """The least-privilege policy for deploying and removing stacks named PREFIX..."""
    actions = required_actions(resource_types)
    statements: list[dict[str, Any]] = []
    unscoped = sorted(a for a in actions if a in UNSCOPED_ACTIONS)
    statements.append({"Sid": "Unscoped", "Effect": "Allow", "Action": unscoped, "Resource": "*"})
    special = {"iam:PassRole", "iam:CreateServiceLinkedRole"}
    for service in sorted({a.split(":")[0] for a in actions}):
        scoped = sorted(
            a
            for a in actions
            if a.split(":")[0] == service and a not in UNSCOPED_ACTIONS and a not in special
        )
        if scoped:
            statements.append(
                {
                    "Sid": service.capitalize(),
                    "Effect": "Allow",
                    "Action": scoped,
                    "Resource": resource_arns(service, prefix),
                }
            )
    if "iam:PassRole" in actions:
        statements.append(
            {
                "Sid": "PassStackRoles",
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": resource_arns("iam", prefix),
                "Condition": {
                    "StringEquals": {
                        "iam:PassedToService": ["ecs-tasks.amazonaws.com", "lambda.amazonaws.com"]
                    }
                },
            }
        )
    if "iam:CreateServiceLinkedRole" in actions:
        statements.append(
            {
                "Sid": "EcsServiceLinkedRole",
                "Effect": "Allow",
                "Action": ["iam:CreateServiceLinkedRole"],
                "Resource": "arn:aws:iam::*:role/aws-service-role/ecs.amazonaws.com/*",
                "Condition": {"StringEquals": {"iam:AWSServiceName": "ecs.amazonaws.com"}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def main() -> int:
    """Print the deployer policy for stack.yaml."""
    from deployments.aws.stack import TEMPLATE, resource_types

    print(json.dumps(deployer_policy(resource_types(TEMPLATE.read_text())), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
