"""RL-of-Thoughts navigators (arXiv 2505.14140): logic blocks, ThoughtEnv, the dueling double-DQN navigator."""
