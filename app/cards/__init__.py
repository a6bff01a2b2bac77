"""Member cards in the members' wallets: WeChat membership card (会员卡) and Alipay member card."""
